//! Operations: health, readiness (and losing MongoDB), metrics, request ids,
//! internal errors kept internal, CORS, the OpenAPI document and /docs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tests::Backend;

use crate::support::{sale_id, Reply, TestApp};

/// A request's reply (the support's own sender is private to it).
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("HTTP request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// A free loopback port for the metrics listener (bound and let go: the
/// test support builds the application itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An application whose metrics listener is at the returned URL.
pub async fn spawn_with_metrics(configure: impl FnOnce(&mut api::Settings)) -> (TestApp, String) {
    let port = free_port();
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.metrics_addr = Some(([127, 0, 0, 1], port).into());
        configure(s);
    })
    .await;
    (app, format!("http://127.0.0.1:{port}/metrics"))
}

pub async fn scrape(app: &TestApp, url: &str) -> Reply {
    send(app.http.get(url)).await
}

// Multi-threaded: stopping MongoDB blocks this thread while the API keeps
// serving on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let mut app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.assert_ok()["status"], "ok");
    let ready = app.get("/readyz").await;
    let body = ready.assert_ok();
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["checks"],
        json!({ "redis": "ok", "mongodb": "ok", "engine": "ok (module)" })
    );

    // MongoDB goes away: not ready (the process is still healthy).
    app.mongo.stop();
    let reply = app.get("/readyz").await;
    reply.assert_error(503, "not_ready");
    assert_eq!(reply.json["checks"]["redis"], "ok");
    // Which dependency, without its error text (hosts, ports, versions).
    assert_eq!(reply.json["checks"]["mongodb"], "down", "{}", reply.text);
    assert_eq!(reply.json["checks"].as_object().map(|c| c.len()), Some(3));
    app.get("/healthz").await.assert_ok();
    // A route that needs MongoDB answers 503, not 500.
    app.get("/flash-sales/abc/public")
        .await
        .assert_error(503, "unavailable");

    app.mongo.restart().await;
    tests::wait_for("ready again", Duration::from_secs(20), || async {
        (app.get("/readyz").await.status == 200).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn readiness_names_the_functions_backend() {
    let app = TestApp::spawn_with(Backend::Lua, |_| {}).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.assert_ok()["checks"]["engine"], "ok (functions)");
}

#[tokio::test]
async fn metrics_count_requests_and_show_sale_gauges() {
    let (app, metrics) = spawn_with_metrics(|_| {}).await;
    // Not on the public port.
    app.get("/metrics").await.assert_error(404, "not_found");
    let token = app.admin_token().await;
    let id = sale_id(
        &app.create_sale(&token, json!({ "initialQuantity": 3 }))
            .await,
    );
    app.buy(&id, "a@x.io").await.assert_ok();
    app.buy(&id, "b@x.io").await.assert_ok();
    app.grant(&id, 1).await;
    app.buy(&id, "c@x.io").await.assert_ok();
    app.get("/nope").await;

    let reply = scrape(&app, &metrics).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let text = &reply.text;
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(
        has(r#"http_requests_total{method="POST",route="/orders/buy",status="200"}"#),
        "{text}"
    );
    assert!(has(r#"route="other",status="404""#), "{text}");
    assert!(has("http_request_duration_seconds_bucket"), "{text}");
    assert!(
        text.contains(&format!("flashsale_queue_length{{sale=\"{id}\"}} 2")),
        "{text}"
    );
    assert!(
        text.contains(&format!("flashsale_holds{{sale=\"{id}\"}} 1")),
        "{text}"
    );
    assert!(
        text.contains(&format!("flashsale_sold{{sale=\"{id}\"}} 0")),
        "{text}"
    );
    assert!(
        text.contains(&format!("flashsale_stock{{sale=\"{id}\"}} 3")),
        "{text}"
    );
    assert!(
        text.contains(&format!("flashsale_available{{sale=\"{id}\"}} 2")),
        "{text}"
    );
}

#[tokio::test]
async fn request_ids_and_hidden_internal_errors() {
    let app = TestApp::spawn().await;
    let reply = app.get("/healthz").await;
    assert!(reply
        .header("x-request-id")
        .is_some_and(|id| !id.is_empty()));
    let echoed = app
        .http
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("request");
    assert_eq!(
        echoed
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-123")
    );

    // An unusable incoming id (too long, odd characters) is replaced.
    for bad in ["x".repeat(300), "a b".to_string()] {
        let replaced = app
            .http
            .get(format!("{}/healthz", app.url))
            .header("x-request-id", bad.as_str())
            .send()
            .await
            .expect("request");
        let id = replaced
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(id.len(), 36, "{id}");
    }

    // Someone broke a key by hand: the engine refuses (WRONGTYPE). The
    // client gets a generic 500 with a request id, and no internals.
    let token = app.admin_token().await;
    let id = sale_id(&app.create_sale(&token, json!({})).await);
    let mut conn = app.redis().await;
    redis::cmd("SET")
        .arg(format!("fs:{{{id}}}:queue"))
        .arg("oops")
        .query_async::<()>(&mut conn)
        .await
        .expect("SET");
    let reply = app.buy(&id, "a@x.io").await;
    reply.assert_error(500, "internal");
    assert_eq!(reply.json["error"]["message"], "internal error");
    assert!(
        !reply.text.to_lowercase().contains("wrongtype"),
        "{}",
        reply.text
    );
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.cors_origins = vec!["https://shop.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}/orders/buy", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://shop.example").await.expect("preflight");
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://shop.example")
    );
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_docs_serve_html() {
    let app = TestApp::spawn().await;
    let reply = app.get("/openapi.json").await;
    let doc = reply.assert_ok();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if let Some(op) = item.get(method) {
                assert!(op["responses"].is_object(), "{method} {path}");
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /flash-sales/{saleId}/public",
        "GET /flash-sales/{saleId}/public/draw",
        "GET /public/flash-sales",
        "GET /flash-sales",
        "POST /flash-sales",
        "GET /flash-sales/{saleId}",
        "PUT /flash-sales/{saleId}",
        "DELETE /flash-sales/{saleId}",
        "POST /flash-sales/{saleId}/pause",
        "POST /flash-sales/{saleId}/resume",
        "POST /orders/buy",
        "GET /orders/position",
        "POST /orders/confirm",
        "GET /orders/by-email",
        "GET /orders/events",
        "GET /orders/admin/list",
        "GET /orders/admin/queue/{saleId}/overview",
        "GET /orders/admin/queue/{saleId}/members",
        "GET /flash-sales/{saleId}/live",
        "POST /auth/signup",
        "POST /auth/signin",
        "POST /auth/signout",
        "GET /healthz",
        "GET /readyz",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(operations, expected);
    // Every path parameter is declared, every admin route needs the bearer.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if path.contains("{saleId}") {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "saleId" && p["in"] == "path"),
                    "{method} {path}"
                );
            }
        }
    }
    assert!(doc["paths"]["/flash-sales"]["post"]["security"].is_array());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let buy_body = &doc["paths"]["/orders/buy"]["post"]["requestBody"];
    assert!(
        buy_body["content"]["application/json"].is_object(),
        "{buy_body}"
    );
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "ErrorBody",
        "BuyRequest",
        "BuyResponse",
        "PublicSale",
        "CreateSale",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }

    for path in ["/docs", "/docs/"] {
        let docs = app.get(path).await;
        assert_eq!(docs.status, 200, "{path}");
        assert!(docs
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html")));
        assert!(docs.text.to_lowercase().contains("swagger"), "{path}");
    }
}

/// Swagger UI gets a policy that lets it run (its scripts are files; it
/// sets style attributes, hence inline styles) and nothing more.
#[tokio::test]
async fn docs_have_a_content_security_policy_swagger_ui_works_under() {
    let app = TestApp::spawn().await;
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, 200);
    let csp = docs
        .header("content-security-policy")
        .expect("a CSP on /docs/")
        .to_string();
    assert_eq!(csp, api::web::DOCS_CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self' 'unsafe-inline'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    // The page's scripts are files from this origin: every <script> has a
    // src, so script-src 'self' runs them all; each one is served.
    let html = docs.text.to_lowercase();
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "{html}");
    for script in scripts {
        let tag = script.split('>').next().unwrap_or("");
        let src = tag
            .split("src=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("an inline script: {script}"));
        let path = format!("/docs/{}", src.trim_start_matches("./"));
        let served = app.get(&path).await;
        assert_eq!(served.status, 200, "{path}");
        assert!(served.header("content-security-policy").is_some(), "{path}");
    }
}

#[tokio::test]
async fn unknown_methods_and_routes_fold_into_other_so_series_stay_bounded() {
    let (app, metrics) = spawn_with_metrics(|_| {}).await;
    for i in 0..1000 {
        let method = reqwest::Method::from_bytes(format!("M{i}").as_bytes()).expect("a method");
        let path = if i % 2 == 0 {
            "/healthz"
        } else {
            "/no/such/route"
        };
        let reply = send(app.http.request(method, format!("{}{path}?n={i}", app.url))).await;
        assert!(reply.status.is_client_error(), "{reply:?}");
    }
    let text = scrape(&app, &metrics).await.text;
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .collect();
    assert!(
        series.iter().all(|l| !l.contains("method=\"M")),
        "a raw method became a label"
    );
    assert!(
        series.iter().any(|l| l.contains(r#"method="other""#)),
        "{text}"
    );
    assert!(
        series.iter().all(|l| !l.contains("/no/such/route")),
        "a raw path became a label"
    );
    // Every test of this binary shares the recorder; whatever they did, the
    // series are a few per route template, not one per request.
    assert!(series.len() < 300, "{} series:\n{text}", series.len());
}
