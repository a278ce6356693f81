//! KV bindings and Cron Triggers through the SDK: `env.kv(..)` in `fetch` and `scheduled`, the
//! local trigger endpoints of `burrow dev`, and the admin API's KV endpoints.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use burrow::server::{Flags, Mode, ServeOptions, Server};
use burrow::{App, Env, Request, Response, Result, ScheduledController, StatusCode};

const CONFIG: &str = r#"
name = "kv-cron"
main = "src/lib.rs"
compatibility_date = "2025-01-01"
kv_namespaces = [{ binding = "CACHE", id = "cache-id" }]

[triggers]
crons = ["0 0 1 1 *"]
"#;

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let cache = env.kv("CACHE")?;
    let key = request
        .query("key")
        .map(|key| key.into_owned())
        .unwrap_or_default();
    match request.path() {
        "/put" => {
            let value = request
                .query("value")
                .map(|v| v.into_owned())
                .unwrap_or_default();
            cache.put(&key, value).await?;
            Ok(Response::text("stored"))
        }
        "/get" => match cache.get_text(&key).await? {
            Some(value) => Ok(Response::text(value)),
            None => Ok(Response::error("absent", StatusCode::NOT_FOUND)),
        },
        "/missing-binding" => {
            let error = env.kv("NOPE").unwrap_err();
            Ok(Response::text(error.message().to_owned()))
        }
        _ => Ok(Response::error("not found", StatusCode::NOT_FOUND)),
    }
}

async fn scheduled(controller: ScheduledController, env: Env) -> Result<()> {
    if controller.cron == "fail" {
        return Err(burrow::Error::new("failing on purpose"));
    }
    let cache = env.kv("CACHE")?;
    cache
        .put(
            "last-run",
            format!("{} at {}", controller.cron, controller.scheduled_time_ms),
        )
        .await?;
    Ok(())
}

fn start(dir: &Path) -> (tokio::runtime::Runtime, Server) {
    std::fs::write(dir.join("wrangler.toml"), CONFIG).expect("write config");
    let loaded = burrow_config::load_files(
        &[dir.join("wrangler.toml")],
        &burrow_config::LoadOptions::default(),
    )
    .expect("config loads");
    let flags = Flags {
        port: Some(0),
        admin_address: Some("127.0.0.1:0".parse().expect("address")),
        persist_to: Some(dir.join("data")),
        ..Flags::default()
    };
    let options = ServeOptions::resolve(&loaded, &flags, Mode::Dev).expect("options");
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .fetch(fetch)
                .scheduled(scheduled)
                .start(&loaded, &options),
        )
        .expect("the app starts");
    (control, server)
}

/// One HTTP/1.1 request; the status and the body.
fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn kv_bindings_cron_triggers_and_the_admin_kv_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, server) = start(dir.path());
    let ingress = server.ingress_address();
    let admin = server.admin_address();

    // The binding reads its own writes.
    assert_eq!(
        request(ingress, "GET", "/put?key=a&value=1", ""),
        (200, "stored".into())
    );
    assert_eq!(request(ingress, "GET", "/get?key=a", ""), (200, "1".into()));
    assert_eq!(request(ingress, "GET", "/get?key=zz", "").0, 404);
    let (_, message) = request(ingress, "GET", "/missing-binding", "");
    assert_eq!(
        message,
        "env has no KV namespace binding \"NOPE\" (KV bindings: CACHE)"
    );

    // The local trigger endpoints run the scheduled handler with the cron asked for.
    assert_eq!(
        request(ingress, "GET", "/__scheduled?cron=*%2F5+*+*+*+*", ""),
        (200, "Ran scheduled event".into())
    );
    let (_, last) = request(ingress, "GET", "/get?key=last-run", "");
    assert!(last.starts_with("*/5 * * * * at "), "{last}");
    assert_eq!(
        request(
            ingress,
            "GET",
            "/cdn-cgi/handler/scheduled?cron=0+0+*+*+*&time=1234",
            ""
        ),
        (200, "ok".into())
    );
    assert_eq!(
        request(ingress, "GET", "/get?key=last-run", ""),
        (200, "0 0 * * * at 1234".into())
    );
    assert_eq!(
        request(ingress, "GET", "/cdn-cgi/handler/scheduled?cron=fail", ""),
        (500, "exception".into())
    );

    // The admin API: Cloudflare's v4 KV shapes.
    let base = "/client/v4/accounts/local/storage/kv/namespaces";
    let (status, body) = request(admin, "GET", base, "");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(listed["result"][0]["id"], "cache-id");
    assert_eq!(listed["result"][0]["title"], "kv-cron-CACHE");
    let value_path = format!("{base}/cache-id/values/greeting");
    let (status, body) = request(
        admin,
        "PUT",
        &format!("{value_path}?metadata=%7B%22lang%22%3A%22en%22%7D&expiration_ttl=3600"),
        "hello there",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        request(admin, "GET", &value_path, ""),
        (200, "hello there".into())
    );
    assert_eq!(
        request(ingress, "GET", "/get?key=greeting", ""),
        (200, "hello there".into())
    );
    let (_, body) = request(
        admin,
        "GET",
        &format!("{base}/cache-id/metadata/greeting"),
        "",
    );
    let metadata: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(metadata["result"]["lang"], "en");
    let (status, body) = request(admin, "GET", &format!("{base}/cache-id/keys?prefix=gr"), "");
    assert_eq!(status, 200, "{body}");
    let keys: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(keys["result"][0]["name"], "greeting");
    assert_eq!(keys["result"][0]["metadata"]["lang"], "en");
    assert!(keys["result"][0]["expiration"].is_i64());
    assert_eq!(keys["result_info"]["count"], 1);
    let (status, body) = request(admin, "PUT", &format!("{base}/cache-id/values/..%2F"), "x");
    assert_eq!(status, 200, "a key with a slash is fine: {body}");
    let (status, body) = request(
        admin,
        "PUT",
        &format!("{base}/cache-id/values/short?expiration_ttl=10"),
        "x",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(
            "KV PUT failed: 400 Invalid expiration_ttl of 10. Expiration TTL must be at least 60."
        ),
        "{body}"
    );
    assert_eq!(request(admin, "DELETE", &value_path, "").0, 200);
    let (status, body) = request(admin, "GET", &value_path, "");
    assert_eq!(status, 404);
    assert!(body.contains("key not found"), "{body}");
    let (status, body) = request(admin, "GET", &format!("{base}/other/keys"), "");
    assert_eq!(status, 404, "{body}");

    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("clean shutdown");
}
