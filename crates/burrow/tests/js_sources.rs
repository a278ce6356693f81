//! Where JavaScript Workers come from: the stack of an uncaught exception in a TypeScript module
//! names the `.ts` lines (oxc's source map applied to the stack), and a project bundled by
//! `wrangler deploy --dry-run --outdir dist` (wrangler from `.cache/npm`, installed by
//! `scripts/install-clients`) runs under Burrow from the bundle.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{body, dev, http, write};

const INDEX_TS: &str = r#"interface Env {
  NAME: string;
  COUNT: number;
}

type Handler = (
  request: Request,
  env: Env,
) => Promise<Response>;

enum Mode { A, B }

function fail(mode: Mode): never {
  throw new Error(`boom ${mode}`);
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const value: number = 1 as number;
    if (value) fail(Mode.B);
    return new Response("ok");
  },
};
"#;

#[test]
fn exception_stacks_name_the_typescript_lines() {
    let project = tempfile::tempdir().expect("tempdir");
    write(
        project.path(),
        "wrangler.toml",
        "name = \"tslines\"\nmain = \"src/index.ts\"\ncompatibility_date = \"2025-04-01\"\n",
    );
    std::fs::create_dir_all(project.path().join("src")).expect("src");
    write(&project.path().join("src"), "index.ts", INDEX_TS);
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(project.path(), state.path());
    let (status, response) = http(server.ingress, "GET", "/", &[]);
    assert_eq!(status, 500, "{response}");
    let page = body(&response);
    // `throw` is on line 14 and the call on line 20 of the .ts file; the stripped JavaScript has
    // them on other lines (the interface, the type and the enum take different room).
    assert!(page.contains("index.ts:14:"), "{page}");
    assert!(page.contains("index.ts:20:"), "{page}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("index.ts:14:"), "{log}");
}

fn wrangler() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/npm/node_modules/wrangler/bin/wrangler.js");
    if path.is_file() {
        return Some(path);
    }
    let hint = "run `scripts/install-clients` (as .ci/run does) to install it into .cache/";
    if std::env::var_os("CI").is_some() {
        panic!("wrangler is not installed, and CI is set: {hint}");
    }
    eprintln!("\n!!!!! SKIPPED: wrangler is not installed; {hint} !!!!!\n");
    None
}

#[test]
fn a_project_bundled_by_wrangler_runs_from_its_bundle() {
    let Some(wrangler) = wrangler() else { return };
    let project = tempfile::tempdir().expect("tempdir");
    write(
        project.path(),
        "wrangler.toml",
        "name = \"bundled\"\nmain = \"src/index.ts\"\ncompatibility_date = \"2025-04-01\"\n",
    );
    let src = project.path().join("src");
    std::fs::create_dir_all(&src).expect("src");
    write(
        &src,
        "greet.ts",
        "export function greet(name: string): string {\n  return `hello ${name}`;\n}\n",
    );
    write(
        &src,
        "index.ts",
        "import { greet } from \"./greet\";\nexport default {\n  async fetch(request: Request): Promise<Response> {\n    \
         return new Response(greet(new URL(request.url).searchParams.get(\"name\") ?? \"nobody\"));\n  },\n};\n",
    );
    let output = Command::new("node")
        .arg(&wrangler)
        .args(["deploy", "--dry-run", "--outdir", "dist"])
        .current_dir(project.path())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "1")
        .output()
        .expect("node runs wrangler");
    assert!(
        output.status.success(),
        "wrangler: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let bundle = project.path().join("dist/index.js");
    assert!(bundle.is_file(), "wrangler wrote {}", bundle.display());
    // The sources go: only the bundle is left to run.
    std::fs::remove_dir_all(&src).expect("remove the sources");
    write(
        project.path(),
        "wrangler.toml",
        "name = \"bundled\"\nmain = \"dist/index.js\"\ncompatibility_date = \"2025-04-01\"\n",
    );
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(project.path(), state.path());
    let (status, response) = http(server.ingress, "GET", "/?name=bundle", &[]);
    assert_eq!(
        (status, body(&response)),
        (200, "hello bundle"),
        "{response}"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
