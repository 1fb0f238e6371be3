//! The web pages served by the API: the customer page, the admin dashboard,
//! their assets, the security headers on each, and the public list of open
//! sales the customer page's index uses. (Their behaviour in a browser is
//! tested by web-tests/.)

use serde_json::json;

use crate::support::{rfc3339, sale_id, Reply, TestApp};

#[track_caller]
fn assert_security_headers(reply: &Reply) {
    let csp = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("CSP on {reply:#?}"));
    let scripts = csp
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("script-src "))
        .unwrap_or_else(|| panic!("script-src in {csp}"));
    assert_eq!(scripts, "'self'", "scripts only from this origin: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
}

/// `<script>` tags with a body, and `on…=` event-handler attributes.
fn inline_code(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut rest = lower.as_str();
    while let Some(start) = rest.find("<script") {
        let tag = &rest[start..];
        let end = tag.find('>').expect("closed <script> tag");
        let open = &tag[..=end];
        assert!(open.contains(" src=\""), "a script without src: {open}");
        assert!(
            tag[end + 1..].starts_with("</script>"),
            "a script with a body: {}",
            &tag[..tag.len().min(80)]
        );
        rest = &tag[end..];
    }
    for attr in lower.split(|c: char| c.is_whitespace()) {
        if attr.starts_with("on") && attr.contains('=') {
            found.push(attr.to_string());
        }
    }
    if lower.contains("javascript:") {
        found.push("javascript: URL".into());
    }
    if lower.contains("style=") {
        found.push("inline style attribute".into());
    }
    found
}

#[tokio::test]
async fn pages_are_html_with_security_headers_and_no_inline_code() {
    let app = TestApp::spawn().await;
    for (path, marker) in [
        ("/", "/assets/customer.js"),
        ("/sales/6564f0c2a1b2c3d4e5f60718", "/assets/customer.js"),
        ("/admin", "/assets/admin.js"),
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status.as_u16(), 200, "{path}: {reply:#?}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_security_headers(&reply);
        assert!(reply.text.starts_with("<!doctype html>"), "{path}");
        assert!(reply.text.contains(marker), "{path} loads {marker}");
        assert!(reply.text.contains("/assets/app.css"), "{path}");
        assert_eq!(inline_code(&reply.text), Vec::<String>::new(), "{path}");
        // Nothing from another origin.
        assert!(!reply.text.contains("http://"), "{path}");
        assert!(!reply.text.contains("https://"), "{path}");
    }
}

#[tokio::test]
async fn assets_have_their_types_and_the_headers() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/common.js", "text/javascript; charset=utf-8"),
        ("/assets/customer.js", "text/javascript; charset=utf-8"),
        ("/assets/admin.js", "text/javascript; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status.as_u16(), 200, "{path}: {reply:#?}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_security_headers(&reply);
        assert!(!reply.text.is_empty(), "{path}");
    }
    // The scripts never parse user text as HTML.
    for script in ["common.js", "customer.js", "admin.js"] {
        let text = app.get(&format!("/assets/{script}")).await.text;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!text.contains(sink), "{script} uses {sink}");
        }
    }
}

#[tokio::test]
async fn unknown_assets_and_pages_are_json_404s() {
    let app = TestApp::spawn().await;
    let reply = app.get("/assets/nope.js").await;
    reply.assert_error(404, "asset_not_found");
    app.get("/assets/../Cargo.toml")
        .await
        .assert_error(404, "not_found");
    app.get("/assets/%2e%2e%2fCargo.toml")
        .await
        .assert_error(404, "asset_not_found");
    app.get("/admin/nope").await.assert_error(404, "not_found");
    // Only GET.
    app.post("/admin", &json!({}))
        .await
        .assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn api_responses_carry_nosniff_and_referrer_policy() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/no-such-route"] {
        let reply = app.get(path).await;
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    }
}

#[tokio::test]
async fn public_list_shows_upcoming_and_active_sales_soonest_first() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let later = app
        .create_sale(
            &token,
            json!({ "name": "Later", "startsAt": rfc3339(7200), "endsAt": rfc3339(9000) }),
        )
        .await;
    let now = app.create_sale(&token, json!({ "name": "Now" })).await;
    let sold_out = app
        .create_sale(
            &token,
            json!({ "name": "Gone", "initialQuantity": 1, "startsAt": rfc3339(-30) }),
        )
        .await;
    let ended = app
        .create_sale(
            &token,
            json!({ "name": "Over", "startsAt": rfc3339(-120), "endsAt": rfc3339(1) }),
        )
        .await;
    let gone = sale_id(&sold_out);
    app.buy(&gone, "a@example.com").await.assert_ok();
    app.admit(&gone, 1).await;
    app.confirm(&gone, "a@example.com").await.assert_ok();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let reply = app.get("/public/flash-sales").await;
    let body = reply.assert_ok();
    let items = body["items"].as_array().expect("items");
    let seen: Vec<(&str, &str)> = items
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name"),
                s["status"].as_str().expect("status"),
            )
        })
        .collect();
    // Ended sales are left out; the soonest start comes first.
    assert_eq!(
        seen,
        [
            ("Now", "active"),
            ("Gone", "sold_out"),
            ("Later", "upcoming")
        ]
    );
    assert_eq!(items[0]["id"], sale_id(&now));
    assert_eq!(items[0]["pricePerUnit"], "49.99");
    assert_eq!(items[0]["stockLeft"], 10);
    assert_eq!(items[1]["stockLeft"], 0);
    assert_eq!(items[2]["id"], sale_id(&later));
    assert!(body["serverTime"].is_string());
    assert!(items.iter().all(|s| s["id"] != sale_id(&ended)));
}
