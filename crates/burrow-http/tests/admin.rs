//! The admin listener end to end: bearer-token auth, Cloudflare's envelope on every path
//! (success, 401, 404, 405, malformed JSON, a panicking handler), the loopback rule, and
//! [`AdminClient`] against it.

use std::time::Duration;

use burrow_http::admin::{self, TokenRequired};
use burrow_http::{
    AdminAuth, AdminClient, AdminRequest, AdminRouter, ApiError, ClientError, ServerHandle,
    ServerOptions, serve_admin,
};
use burrow_runtime::shard::Shards;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";

fn router() -> AdminRouter {
    let mut router = AdminRouter::new();
    router
        .public_route(Method::GET, "/healthz", |_| async {
            Ok(admin::success("ok"))
        })
        .route(
            Method::GET,
            "/client/v4/accounts/:account/things",
            |request: AdminRequest| async move {
                let account = request.param("account").unwrap_or_default().to_owned();
                let prefix = request.query("prefix");
                Ok(admin::success_with_info(
                    json!([{"account": account, "prefix": prefix}]),
                    Some(json!({"count": 1})),
                ))
            },
        )
        .route(
            Method::POST,
            "/client/v4/accounts/:account/things",
            |request: AdminRequest| async move {
                #[derive(serde::Deserialize)]
                struct Create {
                    name: String,
                }
                let create: Create = request.json().await?;
                Ok(admin::success(json!({"name": create.name})))
            },
        )
        .route(
            Method::GET,
            "/client/v4/accounts/:account/broken",
            |_request: AdminRequest| async move {
                let fail = true;
                assert!(!fail, "deliberate test panic");
                Err::<_, ApiError>(ApiError::internal("unreachable"))
            },
        );
    router
}

fn start(shards: &Shards, tokens: &[&str]) -> ServerHandle {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let auth = AdminAuth::new(tokens.iter().map(|token| (*token).to_owned()));
    serve_admin(listener, shards, router(), auth, ServerOptions::admin()).expect("serve")
}

fn client(server: &ServerHandle, token: Option<&str>) -> AdminClient {
    AdminClient::new(
        &format!("http://{}", server.local_addr()),
        token.map(str::to_owned),
    )
    .expect("client")
}

async fn raw(client: &AdminClient, method: Method, path: &str) -> (StatusCode, Value) {
    let response = client.send(method, path, None).await.expect("answer");
    assert_eq!(response.headers["content-type"], "application/json");
    let value = serde_json::from_slice(&response.body).expect("JSON");
    (response.status, value)
}

#[tokio::test]
async fn tokens_decide_and_every_answer_is_an_envelope() {
    let shards = Shards::start(2).expect("shards");
    let server = start(&shards, &[TOKEN]);
    let path = "/client/v4/accounts/acc-1/things?prefix=a%20b";
    let unauthorized = json!({
        "success": false,
        "errors": [{"code": 10000, "message": "Authentication error"}],
        "messages": [],
        "result": null
    });

    for token in [None, Some("wrong-token-0123456789"), Some("")] {
        let (status, value) = raw(&client(&server, token), Method::GET, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(value, unauthorized);
        // Without the token nobody learns which paths exist.
        let (status, _) = raw(&client(&server, token), Method::GET, "/client/v4/nothing").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let good = client(&server, Some(TOKEN));
    let (status, value) = raw(&good, Method::GET, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        value,
        json!({
            "success": true,
            "errors": [],
            "messages": [],
            "result": [{"account": "acc-1", "prefix": "a b"}],
            "result_info": {"count": 1}
        })
    );

    let (status, value) = raw(&good, Method::GET, "/client/v4/accounts/acc-1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(value["success"], false);
    assert_eq!(value["errors"][0]["code"], 7003);
    assert_eq!(
        value["errors"][0]["message"],
        "Could not route to /client/v4/accounts/acc-1/nothing, perhaps your object identifier is invalid?"
    );
    assert_eq!(value["errors"][1]["code"], 7000);

    let (status, value) = raw(&good, Method::DELETE, "/client/v4/accounts/acc-1/things").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(value["errors"][0]["code"], 7003);

    // The health check needs no token.
    let (status, value) = raw(&client(&server, None), Method::GET, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["result"], "ok");

    server.shutdown(Duration::from_secs(5)).await;
    shards.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn bad_input_is_a_400_and_a_panic_a_500_envelope() {
    let shards = Shards::start(1).expect("shards");
    let server = start(&shards, &[TOKEN]);
    let good = client(&server, Some(TOKEN));
    let path = "/client/v4/accounts/acc/things";

    for body in ["{not json", "{}", r#"{"name": 5}"#, ""] {
        let response = good
            .send(
                Method::POST,
                path,
                Some(("application/json", bytes::Bytes::from(body))),
            )
            .await
            .expect("answer");
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        let value: Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(value["errors"][0]["code"], 6007, "{body}");
        let message = value["errors"][0]["message"].as_str().expect("message");
        assert!(
            message.starts_with("Malformed JSON in request body"),
            "{message}"
        );
        if body == "{}" {
            assert!(message.contains("missing field `name`"), "{message}");
        }
    }

    let (status, value) = raw(&good, Method::GET, "/client/v4/accounts/acc/broken").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(value["success"], false);
    assert!(
        value["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("deliberate test panic"),
        "{value}"
    );
    // The server is still there.
    let created = good
        .post(path, &json!({"name": "thing"}))
        .await
        .expect("created");
    assert_eq!(created.result, Some(json!({"name": "thing"})));

    server.shutdown(Duration::from_secs(5)).await;
    shards.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn the_client_returns_envelopes_and_typed_errors() {
    let shards = Shards::start(1).expect("shards");
    let server = start(&shards, &[TOKEN]);

    let envelope = client(&server, Some(TOKEN))
        .get("/client/v4/accounts/acc/things")
        .await
        .expect("listed");
    assert!(envelope.success);
    assert_eq!(envelope.result_info, Some(json!({"count": 1})));

    let error = client(&server, Some("not-the-token"))
        .get("/client/v4/accounts/acc/things")
        .await
        .expect_err("refused");
    match &error {
        ClientError::Api { status, errors } => {
            assert_eq!(*status, StatusCode::UNAUTHORIZED);
            assert_eq!(errors[0].code, 10000);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "401 Unauthorized: Authentication error [code: 10000]"
    );

    let address = server.local_addr();
    server.shutdown(Duration::from_secs(5)).await;
    let error = AdminClient::new(&format!("http://{address}"), None)
        .expect("client")
        .get("/healthz")
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("is `burrow dev` or `burrow serve` running?")
    );
    shards.shutdown(Duration::from_secs(5));
}

#[test]
fn without_a_token_the_admin_api_stays_on_loopback() {
    let shards = Shards::start(1).expect("shards");
    // Binding the wildcard address here sends no traffic anywhere; the listener is refused
    // before it serves.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let error = serve_admin(
        listener,
        &shards,
        router(),
        AdminAuth::new(Vec::new()),
        ServerOptions::admin(),
    )
    .expect_err("refused");
    assert!(
        matches!(&error, admin::ServeError::TokenRequired(TokenRequired { address: refused }) if *refused == address),
        "{error:?}"
    );
    assert!(error.to_string().contains("BURROW_API_TOKEN"), "{error}");
    shards.shutdown(Duration::from_secs(5));
}
