//! ES module resolution and loading for a Worker: relative imports from `main`, JSON imports,
//! TypeScript stripped by oxc, bare specifiers from `node_modules` (package.json `exports`,
//! `module`, `main`; ESM only) and the built-in `cloudflare:workers`. Nothing outside the
//! project's directory (or a `node_modules` directory) can be imported, and there are no Node
//! built-ins: `fs`, `node:child_process` and the like do not resolve.

use std::path::{Component, Path, PathBuf};

use rquickjs::loader::{Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Error, Module, Result};

use crate::typescript;

/// The name of the built-in module with `WorkerEntrypoint`, `DurableObject` and `env`.
pub(crate) const CLOUDFLARE_WORKERS: &str = "cloudflare:workers";

/// The built-in module with `NonRetryableError`.
pub(crate) const CLOUDFLARE_WORKFLOWS: &str = "cloudflare:workflows";

/// The source of `cloudflare:workflows` (the class itself comes from `js/workflow.js`).
const CLOUDFLARE_WORKFLOWS_SOURCE: &str =
    "export const NonRetryableError = globalThis[Symbol.for(\"burrow.NonRetryableError\")];\n";

/// The largest module file Burrow loads (Cloudflare's own limit for a whole Worker is 10 MB
/// compressed; one source file larger than this is not a Worker).
pub(crate) const MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;

/// Extensions tried, in order, for an import without one.
const EXTENSIONS: &[&str] = &["js", "mjs", "ts", "mts", "tsx", "jsx", "json", "cjs"];

/// The `exports` conditions Burrow matches, in wrangler's order of preference.
const CONDITIONS: &[&str] = &[
    "workerd", "worker", "browser", "import", "module", "default",
];

/// The source of `cloudflare:workers`.
const CLOUDFLARE_WORKERS_SOURCE: &str = include_str!("js/cloudflare_workers.js");

/// Resolves specifiers to absolute file paths (or built-in names).
pub(crate) struct WorkerResolver {
    root: PathBuf,
}

impl WorkerResolver {
    pub(crate) fn new(root: PathBuf) -> WorkerResolver {
        WorkerResolver { root }
    }
}

impl Resolver for WorkerResolver {
    fn resolve<'js>(&mut self, _ctx: &Ctx<'js>, base: &str, name: &str) -> Result<String> {
        resolve(&self.root, base, name)
            .map_err(|message| Error::new_resolving_message(base, name, message))
    }
}

/// Resolves `name` imported from module `base` within the project `root`.
pub(crate) fn resolve(root: &Path, base: &str, name: &str) -> std::result::Result<String, String> {
    if name == CLOUDFLARE_WORKERS || name == CLOUDFLARE_WORKFLOWS {
        return Ok(name.to_owned());
    }
    if name.starts_with("node:") || name.contains(':') {
        return Err(format!(
            "No such module \"{name}\" (Burrow provides cloudflare:workers and cloudflare:workflows; Node.js built-ins are not available)"
        ));
    }
    let base_dir = if base.is_empty() || base == CLOUDFLARE_WORKERS || base == CLOUDFLARE_WORKFLOWS
    {
        root.to_path_buf()
    } else {
        Path::new(base)
            .parent()
            .map_or_else(|| root.to_path_buf(), Path::to_path_buf)
    };
    let resolved = if name.starts_with("./") || name.starts_with("../") || name.starts_with('/') {
        let candidate = normalize(&base_dir.join(name));
        file_or_directory(&candidate).ok_or_else(|| {
            format!(
                "No such module \"{name}\" (looked for {})",
                candidate.display()
            )
        })?
    } else {
        package(&base_dir, name)?
    };
    let inside_root = resolved.starts_with(root);
    let in_node_modules = resolved
        .components()
        .any(|c| c.as_os_str() == "node_modules");
    if !inside_root && !in_node_modules {
        return Err(format!(
            "No such module \"{name}\": {} is outside the project directory {}",
            resolved.display(),
            root.display()
        ));
    }
    resolved
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("module path {} is not UTF-8", resolved.display()))
}

/// Removes `.` and `..` components without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` as a file, with an extension added, with a TypeScript file standing in for a `.js`
/// import, or as a directory with an index module.
fn file_or_directory(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    // TypeScript projects import "./x.js" for x.ts.
    if let Some(stem) = path.to_str().and_then(|p| p.strip_suffix(".js")) {
        for extension in ["ts", "tsx"] {
            let candidate = PathBuf::from(format!("{stem}.{extension}"));
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    for extension in EXTENSIONS {
        let mut candidate = path.as_os_str().to_owned();
        candidate.push(".");
        candidate.push(extension);
        let candidate = PathBuf::from(candidate);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if path.is_dir() {
        if let Some(entry) = package_entry(path, ".") {
            return Some(entry);
        }
        for extension in EXTENSIONS {
            let candidate = path.join(format!("index.{extension}"));
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A bare specifier: `pkg`, `pkg/sub`, `@scope/pkg`, `@scope/pkg/sub`, found in the nearest
/// `node_modules` from `from` upwards.
fn package(from: &Path, name: &str) -> std::result::Result<PathBuf, String> {
    let mut parts = name.splitn(if name.starts_with('@') { 3 } else { 2 }, '/');
    let package_name = if name.starts_with('@') {
        let scope = parts.next().unwrap_or_default();
        let package = parts.next().unwrap_or_default();
        format!("{scope}/{package}")
    } else {
        parts.next().unwrap_or_default().to_owned()
    };
    let subpath = parts
        .next()
        .map_or_else(|| ".".to_owned(), |sub| format!("./{sub}"));
    let mut directory = Some(from);
    while let Some(current) = directory {
        let candidate = current.join("node_modules").join(&package_name);
        if candidate.is_dir() {
            if let Some(entry) = package_entry(&candidate, &subpath) {
                return Ok(entry);
            }
            return Err(format!(
                "No such module \"{name}\": {} has no ES module entry for \"{subpath}\"",
                candidate.display()
            ));
        }
        directory = current.parent();
    }
    Err(format!(
        "No such module \"{name}\" (not a built-in, and no node_modules/{package_name} above {})",
        from.display()
    ))
}

/// The file a package directory exports for `subpath` (`.` or `./x`).
fn package_entry(directory: &Path, subpath: &str) -> Option<PathBuf> {
    let manifest: Option<serde_json::Value> = std::fs::read(directory.join("package.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(manifest) = &manifest {
        if let Some(exports) = manifest.get("exports") {
            let target = exports_target(exports, subpath)?;
            return file_or_directory(&normalize(&directory.join(target)));
        }
        if subpath == "." {
            for field in ["module", "main"] {
                if let Some(entry) = manifest.get(field).and_then(|v| v.as_str())
                    && let Some(found) = file_or_directory(&normalize(&directory.join(entry)))
                {
                    return Some(found);
                }
            }
        }
    }
    if subpath == "." {
        return file_or_directory(&directory.join("index"));
    }
    file_or_directory(&normalize(&directory.join(subpath)))
}

/// `exports` resolution: the subpath map (with `*` patterns) and the condition objects.
fn exports_target(exports: &serde_json::Value, subpath: &str) -> Option<String> {
    use serde_json::Value;
    let is_subpath_map = exports
        .as_object()
        .is_some_and(|map| map.keys().any(|key| key.starts_with('.')));
    if !is_subpath_map {
        return if subpath == "." {
            conditional(exports)
        } else {
            None
        };
    }
    let map = exports.as_object()?;
    if let Some(value) = map.get(subpath) {
        return conditional(value);
    }
    // Patterns: "./features/*": "./src/features/*.js"; the longest prefix wins.
    let mut best: Option<(&str, &Value, &str)> = None;
    for (key, value) in map {
        if let Some((prefix, suffix)) = key.split_once('*')
            && subpath.starts_with(prefix)
            && subpath.ends_with(suffix)
            && subpath.len() >= prefix.len() + suffix.len()
            && best.is_none_or(|(best_prefix, _, _)| prefix.len() > best_prefix.len())
        {
            let matched = &subpath[prefix.len()..subpath.len() - suffix.len()];
            best = Some((prefix, value, matched));
        }
    }
    let (_, value, matched) = best?;
    conditional(value).map(|target| target.replace('*', matched))
}

/// The first matching condition of a conditional export (or the string itself).
fn conditional(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(target) => Some(target.clone()),
        Value::Array(items) => items.iter().find_map(conditional),
        Value::Object(conditions) => conditions
            .iter()
            .filter(|(key, _)| CONDITIONS.contains(&key.as_str()))
            .find_map(|(_, value)| conditional(value)),
        _ => None,
    }
}

/// Loads resolved modules: reads the file and turns JSON and TypeScript into JavaScript.
pub(crate) struct WorkerLoader;

impl Loader for WorkerLoader {
    fn load<'js>(&mut self, ctx: &Ctx<'js>, name: &str) -> Result<Module<'js, Declared>> {
        if name == CLOUDFLARE_WORKERS {
            return Module::declare(ctx.clone(), name, CLOUDFLARE_WORKERS_SOURCE);
        }
        if name == CLOUDFLARE_WORKFLOWS {
            return Module::declare(ctx.clone(), name, CLOUDFLARE_WORKFLOWS_SOURCE);
        }
        let source = read_module(Path::new(name))
            .map_err(|message| Error::new_loading_message(name, message))?;
        Module::declare(ctx.clone(), name, source)
    }
}

/// The JavaScript source of the module at `path`.
pub(crate) fn read_module(path: &Path) -> std::result::Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|error| format!("{}: {error}", path.display()))?
        .len();
    if size > MAX_MODULE_BYTES {
        return Err(format!(
            "{}: {size} bytes is more than the {MAX_MODULE_BYTES}-byte module limit",
            path.display()
        ));
    }
    let source =
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let value: serde_json::Value = serde_json::from_str(&source).map_err(|error| {
                format!(
                    "{}:{}:{}: {error}",
                    path.display(),
                    error.line(),
                    error.column()
                )
            })?;
            Ok(format!("export default {value};"))
        }
        _ if typescript::is_typescript(path) => typescript::strip(path, &source),
        _ => Ok(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/lib")).unwrap();
        std::fs::write(root.join("src/index.ts"), "").unwrap();
        std::fs::write(root.join("src/util.ts"), "").unwrap();
        std::fs::write(root.join("src/lib/index.js"), "").unwrap();
        std::fs::write(root.join("src/data.json"), "{}").unwrap();
        let pkg = root.join("node_modules/pkg");
        std::fs::create_dir_all(pkg.join("dist/sub")).unwrap();
        std::fs::write(
            pkg.join("package.json"),
            r#"{"exports": {".": {"require": "./dist/index.cjs", "import": "./dist/index.mjs"},
                "./sub/*": {"default": "./dist/sub/*.js"}}}"#,
        )
        .unwrap();
        std::fs::write(pkg.join("dist/index.mjs"), "").unwrap();
        std::fs::write(pkg.join("dist/sub/a.js"), "").unwrap();
        let legacy = root.join("node_modules/@scope/legacy");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(
            legacy.join("package.json"),
            r#"{"main": "main.js", "module": "esm.js"}"#,
        )
        .unwrap();
        std::fs::write(legacy.join("esm.js"), "").unwrap();
        dir
    }

    #[test]
    fn resolves_relative_index_json_and_ts_for_js() {
        let dir = project();
        let root = dir.path();
        let base = root.join("src/index.ts");
        let base = base.to_str().unwrap();
        let check = |name: &str, expected: &str| {
            assert_eq!(
                resolve(root, base, name).unwrap(),
                root.join(expected).to_str().unwrap()
            );
        };
        check("./util", "src/util.ts");
        check("./util.js", "src/util.ts");
        check("./lib", "src/lib/index.js");
        check("./data.json", "src/data.json");
        check("pkg", "node_modules/pkg/dist/index.mjs");
        check("pkg/sub/a", "node_modules/pkg/dist/sub/a.js");
        check("@scope/legacy", "node_modules/@scope/legacy/esm.js");
    }

    #[test]
    fn refuses_node_builtins_and_escapes() {
        let dir = project();
        let root = dir.path();
        let base = root.join("src/index.ts");
        let base = base.to_str().unwrap();
        for name in [
            "fs",
            "node:fs",
            "node:child_process",
            "../../../../etc/passwd",
            "/etc/passwd",
        ] {
            assert!(resolve(root, base, name).is_err(), "{name} resolved");
        }
    }
}
