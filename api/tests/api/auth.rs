//! Admin authentication: sign-in, sign-up (admins only), sign-out
//! (revocation with an absolute expiry), the token attacks, `seed-admin`,
//! and the refusal to start with a weak secret.

use std::time::Duration;

use api::config::SeedAdminArgs;
use api::seed_admin::{seed_admin, Seeded};
use api::Application;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mongodb::bson::doc;
use reqwest::Method;
use serde_json::{json, Value};
use tests::Backend;

use crate::support::{
    b64url, test_settings, Reply, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET,
};

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

/// The claims a genuine token of `app` would carry, for `sub`.
fn claims(sub: &str) -> Value {
    let now = now();
    json!({
        "sub": sub, "email": ADMIN_EMAIL, "iss": "flashsale-api", "aud": "flashsale-admin",
        "iat": now, "nbf": now, "exp": now + 600, "jti": "0123456789abcdef0123456789abcdef",
    })
}

fn sign(header: &Header, claims: &Value, secret: &[u8]) -> String {
    encode(header, claims, &EncodingKey::from_secret(secret)).expect("encode")
}

/// `header.payload.signature` with any header, HMAC-SHA256 over it with
/// the real secret (the "algorithm confusion" forgery).
fn forge(header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

async fn admin_id(app: &TestApp) -> String {
    let user = app
        .db
        .collection::<mongodb::bson::Document>("users")
        .find_one(doc! { "email": ADMIN_EMAIL })
        .await
        .expect("find")
        .expect("admin exists");
    user.get_object_id("_id").expect("_id").to_hex()
}

#[tokio::test]
async fn sign_in_sign_up_sign_out() {
    let app = TestApp::spawn().await;
    app.insert_admin(ADMIN_EMAIL).await;

    app.sign_in(ADMIN_EMAIL, "wrong password")
        .await
        .assert_error(401, "invalid_credentials");
    app.sign_in("nobody@example.com", ADMIN_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    app.sign_in("not an email", ADMIN_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    let signed_in = app.sign_in(" ROOT@example.com ", ADMIN_PASSWORD).await;
    let body = signed_in.assert_ok();
    assert_eq!(body["tokenType"], "Bearer");
    assert!(body["expiresIn"].as_u64().is_some_and(|s| s <= 900));
    let token = body["accessToken"].as_str().expect("token").to_string();

    // The token's claims: HS256, iss, aud, exp <= 15 min.
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::HS256);

    // No anonymous sign-up.
    let new_admin = json!({ "email": "second@example.com", "password": "another-long-one" });
    app.post("/auth/signup", &new_admin)
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(app.count("users", doc! {}).await, 1);
    let created = app.post_as("/auth/signup", &new_admin, &token).await;
    assert_eq!(created.status.as_u16(), 201, "{created:#?}");
    assert_eq!(created.json["email"], "second@example.com");
    assert_eq!(created.json["isAdmin"], true);
    assert!(created.json.get("passwordHash").is_none());
    app.post_as("/auth/signup", &new_admin, &token)
        .await
        .assert_error(409, "email_taken");
    app.post_as(
        "/auth/signup",
        &json!({ "email": "x@example.com", "password": "short" }),
        &token,
    )
    .await
    .assert_error(400, "invalid_password");
    app.post_as(
        "/auth/signup",
        &json!({ "email": "bad email", "password": "long-enough" }),
        &token,
    )
    .await
    .assert_error(400, "invalid_email");
    assert_eq!(app.count("users", doc! {}).await, 2);
    let stored = app
        .db
        .collection::<mongodb::bson::Document>("users")
        .find_one(doc! { "email": "second@example.com" })
        .await
        .expect("find")
        .expect("stored");
    assert!(stored
        .get_str("passwordHash")
        .is_ok_and(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")));
    app.sign_in("second@example.com", "another-long-one")
        .await
        .assert_ok();

    // Sign-out revokes the token until it would be refused anyway: its
    // expiry plus the validation leeway.
    app.get_as("/flash-sales", &token).await.assert_ok();
    let out = app
        .request(Method::POST, "/auth/signout", None, Some(&token))
        .await;
    assert_eq!(out.status.as_u16(), 204, "{out:#?}");
    app.get_as("/flash-sales", &token)
        .await
        .assert_error(401, "unauthorized");
    app.request(Method::POST, "/auth/signout", None, Some(&token))
        .await
        .assert_error(401, "unauthorized");
    let claims: Value =
        serde_json::from_slice(&base64_decode(token.split('.').nth(1).expect("payload")))
            .expect("claims json");
    let jti = claims["jti"].as_str().expect("jti");
    let mut conn = app.redis().await;
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(format!("flashsale-api:revoked-jti:{jti}"))
        .query_async(&mut conn)
        .await
        .expect("PEXPIRETIME");
    let leeway = api::auth::jwt::LEEWAY_SECONDS as i64;
    assert_eq!(
        expires_at,
        (claims["exp"].as_i64().expect("exp") + leeway) * 1000
    );
    // Other tokens are unaffected.
    let fresh = app.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let fresh = fresh.json["accessToken"]
        .as_str()
        .expect("token")
        .to_string();
    app.get_as("/flash-sales", &fresh).await.assert_ok();
}

fn base64_decode(segment: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let values: Vec<u32> = segment
        .bytes()
        .filter_map(|c| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32))
        .collect();
    let mut out = Vec::new();
    for chunk in values.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | (v << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test]
async fn token_attacks_are_refused() {
    let app = TestApp::spawn().await;
    app.insert_admin(ADMIN_EMAIL).await;
    let sub = admin_id(&app).await;
    let good = claims(&sub);

    // Sanity: a token made like ours is accepted.
    let genuine = sign(&Header::new(Algorithm::HS256), &good, JWT_SECRET.as_bytes());
    app.get_as("/flash-sales", &genuine).await.assert_ok();

    let mut attacks: Vec<(&str, String)> = Vec::new();
    let none_header = json!({ "alg": "none", "typ": "JWT" });
    attacks.push((
        "alg none",
        format!(
            "{}.{}.",
            b64url(none_header.to_string().as_bytes()),
            b64url(good.to_string().as_bytes())
        ),
    ));
    attacks.push((
        "HS512",
        sign(&Header::new(Algorithm::HS512), &good, JWT_SECRET.as_bytes()),
    ));
    attacks.push((
        "RS256 header",
        forge(&json!({ "alg": "RS256", "typ": "JWT" }), &good),
    ));
    attacks.push((
        "HS384",
        sign(&Header::new(Algorithm::HS384), &good, JWT_SECRET.as_bytes()),
    ));
    let mut expired = good.clone();
    expired["iat"] = json!(now() - 1000);
    expired["nbf"] = json!(now() - 1000);
    expired["exp"] = json!(now() - 120);
    attacks.push((
        "expired",
        sign(
            &Header::new(Algorithm::HS256),
            &expired,
            JWT_SECRET.as_bytes(),
        ),
    ));
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("someone-else");
    attacks.push((
        "wrong iss",
        sign(
            &Header::new(Algorithm::HS256),
            &wrong_iss,
            JWT_SECRET.as_bytes(),
        ),
    ));
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-api");
    attacks.push((
        "wrong aud",
        sign(
            &Header::new(Algorithm::HS256),
            &wrong_aud,
            JWT_SECRET.as_bytes(),
        ),
    ));
    let mut long_lived = good.clone();
    long_lived["exp"] = json!(now() + 86_400);
    attacks.push((
        "a day long",
        sign(
            &Header::new(Algorithm::HS256),
            &long_lived,
            JWT_SECRET.as_bytes(),
        ),
    ));
    attacks.push((
        "other secret",
        sign(
            &Header::new(Algorithm::HS256),
            &good,
            b"a-different-secret-of-enough-length!!",
        ),
    ));
    // Tampered signature: flip its first character.
    let mut parts: Vec<String> = genuine.split('.').map(str::to_string).collect();
    let flipped = if parts[2].starts_with('A') { "B" } else { "A" };
    parts[2].replace_range(0..1, flipped);
    attacks.push(("tampered signature", parts.join(".")));
    // Tampered payload, original signature.
    let mut elevated = good.clone();
    elevated["email"] = json!("mallory@example.com");
    let original: Vec<&str> = genuine.split('.').collect();
    attacks.push((
        "tampered payload",
        format!(
            "{}.{}.{}",
            original[0],
            b64url(elevated.to_string().as_bytes()),
            original[2]
        ),
    ));
    let mut ghost = good.clone();
    ghost["sub"] = json!("000000000000000000000000");
    attacks.push((
        "unknown account",
        sign(
            &Header::new(Algorithm::HS256),
            &ghost,
            JWT_SECRET.as_bytes(),
        ),
    ));
    attacks.push(("garbage", "not.a.token".into()));
    attacks.push(("empty", String::new()));

    for (name, token) in attacks {
        let reply = app.get_as("/flash-sales", &token).await;
        assert_eq!(reply.status.as_u16(), 401, "{name}: {reply:#?}");
        reply.assert_error(401, "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{name}");
    }

    // Not a bearer token at all.
    let basic = app
        .http
        .get(format!("{}/flash-sales", app.url))
        .header("authorization", "Basic cm9vdDpyb290")
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status().as_u16(), 401);

    // A non-admin account's genuine token is forbidden.
    app.db
        .collection::<mongodb::bson::Document>("users")
        .update_one(
            doc! { "email": ADMIN_EMAIL },
            doc! { "$set": { "isAdmin": false } },
        )
        .await
        .expect("demote");
    app.get_as("/flash-sales", &genuine)
        .await
        .assert_error(403, "not_admin");
}

#[tokio::test]
async fn seed_admin_creates_the_first_admin() {
    let app = TestApp::spawn().await;
    let mut settings = app.settings.clone();
    let none = SeedAdminArgs {
        email: None,
        password: None,
    };

    // Outside dev mode the credentials must be given.
    assert!(seed_admin(&settings, &none).await.is_err());
    assert_eq!(app.count("users", doc! {}).await, 0);

    // Dev mode: the seed's defaults.
    settings.dev_mode = true;
    let seeded = seed_admin(&settings, &none).await.expect("seed");
    assert_eq!(seeded, Seeded::Created("admin@example.com".into()));
    app.sign_in("admin@example.com", "admin123")
        .await
        .assert_ok();
    let again = seed_admin(&settings, &none).await.expect("seed again");
    assert_eq!(again, Seeded::AlreadyExists("admin@example.com".into()));

    // Production: explicit credentials, checked like sign-up's.
    settings.dev_mode = false;
    let weak = SeedAdminArgs {
        email: Some("ops@example.com".into()),
        password: Some("short".into()),
    };
    assert!(seed_admin(&settings, &weak).await.is_err());
    let strong = SeedAdminArgs {
        email: Some("Ops@Example.com".into()),
        password: Some("a-long-production-password".into()),
    };
    let seeded = seed_admin(&settings, &strong).await.expect("seed");
    assert_eq!(seeded, Seeded::Created("ops@example.com".into()));
    app.sign_in("ops@example.com", "a-long-production-password")
        .await
        .assert_ok();
    assert_eq!(app.count("users", doc! { "isAdmin": true }).await, 2);
}

#[tokio::test]
async fn refuses_to_start_with_a_weak_secret() {
    let weak = [
        None,
        Some("short-secret".to_string()),
        Some("secret".to_string()),
        Some(api::config::DEV_JWT_SECRET.to_string()),
    ];
    for secret in weak {
        let mut settings = test_settings();
        settings.jwt_secret = secret.clone().map(Into::into);
        // Unreachable servers: the secret is checked before connecting.
        settings.redis_url = "redis://127.0.0.1:1/".into();
        let built = Application::build(settings).await;
        let error = built.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("JWT_SECRET"), "{secret:?}: {error}");
    }
}

/// A password-guessing run spread over many client addresses (behind a
/// trusted proxy, so each guess comes from its own address and the per-IP
/// limit never sees two) is slowed per account: after K failures the
/// account answers 429 + Retry-After without running Argon2, even to the
/// right password; after the lock the real admin signs in, which clears the
/// count. Buyers are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_from_many_addresses_is_slowed_per_account() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.rate_limit_auth_per_minute = 1;
        s.rate_limit_auth_burst = 1;
        s.signin_max_failures = 3;
        s.signin_lockout_ms = 1_500;
        s.signin_lockout_max_ms = 60_000;
    })
    .await;
    app.insert_admin(ADMIN_EMAIL).await;
    let token_for_sale = {
        // A sale to buy from while the guessing goes on (signed in before
        // it starts, from an address of its own).
        let reply = sign_in_from(&app, "198.51.100.250", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        reply.assert_ok()["accessToken"]
            .as_str()
            .expect("token")
            .to_string()
    };
    let sale = crate::support::sale_id(&app.create_sale(&token_for_sale, json!({})).await);

    let guesses = async {
        let mut answers = Vec::new();
        for i in 0..12 {
            // A new address per guess: the per-IP limit (1 per minute)
            // would stop any address's second guess.
            let from = format!("203.0.113.{i}");
            let started = std::time::Instant::now();
            let reply = sign_in_from(&app, &from, ADMIN_EMAIL, &format!("guess-{i}-xxxx")).await;
            answers.push((reply, started.elapsed()));
        }
        answers
    };
    let buying = async {
        let started = std::time::Instant::now();
        let reply = app.buy(&sale, "buyer@x.io").await;
        (reply, started.elapsed())
    };
    let (answers, (bought, buy_took)) = tokio::join!(guesses, buying);
    bought.assert_ok();
    assert!(buy_took < Duration::from_secs(5), "a buy took {buy_took:?}");

    for (reply, _) in &answers[..3] {
        reply.assert_error(401, "invalid_credentials");
    }
    for (reply, took) in &answers[3..] {
        reply.assert_error(429, "signin_locked");
        let retry: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        assert!(
            *took < Duration::from_secs(5),
            "a locked answer took {took:?}"
        );
    }
    // Locked means locked: the right password too, from yet another address.
    sign_in_from(&app, "203.0.113.100", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .assert_error(429, "signin_locked");
    // Another account is not affected.
    app.insert_admin("other-admin@example.com").await;
    sign_in_from(
        &app,
        "203.0.113.101",
        "other-admin@example.com",
        ADMIN_PASSWORD,
    )
    .await
    .assert_ok();

    // After the window the real admin signs in, and that clears the count:
    // the next wrong password is an ordinary 401.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    sign_in_from(&app, "203.0.113.102", ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .assert_ok();
    sign_in_from(&app, "203.0.113.103", ADMIN_EMAIL, "wrong-again-xxxx")
        .await
        .assert_error(401, "invalid_credentials");
}

/// A second lock lasts twice as long as the first.
#[tokio::test]
async fn sign_in_locks_grow_with_further_failures() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.signin_max_failures = 2;
        s.signin_lockout_ms = 3_000;
    })
    .await;
    app.insert_admin(ADMIN_EMAIL).await;
    for _ in 0..2 {
        app.sign_in(ADMIN_EMAIL, "wrong-password-x")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let locked = app.sign_in(ADMIN_EMAIL, "wrong-password-x").await;
    locked.assert_error(429, "signin_locked");
    assert_eq!(locked.header("retry-after"), Some("3"));
    // An unknown account is counted like a known one (no difference shows).
    for _ in 0..2 {
        app.sign_in("nobody@example.com", "wrong-password-x")
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.sign_in("nobody@example.com", "wrong-password-x")
        .await
        .assert_error(429, "signin_locked");
    // The count lives in Redis with the lock (shared by instances); refused
    // attempts are not counted.
    let mut redis = app.redis().await;
    let failures: u64 = redis::cmd("GET")
        .arg(format!("flashsale-api:{{signin:{ADMIN_EMAIL}}}:attempts"))
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_eq!(failures, 2);
    // Expire the lock now rather than waiting: a third failure locks for 6 s.
    let _: () = redis::cmd("DEL")
        .arg(format!("flashsale-api:{{signin:{ADMIN_EMAIL}}}:locked"))
        .query_async(&mut redis)
        .await
        .expect("DEL");
    app.sign_in(ADMIN_EMAIL, "wrong-password-x")
        .await
        .assert_error(401, "invalid_credentials");
    let locked = app.sign_in(ADMIN_EMAIL, "wrong-password-x").await;
    locked.assert_error(429, "signin_locked");
    // Doubled to 6 s; on a loaded machine a second may pass between the
    // lock and this answer, but never three (that would be the first lock).
    let retry_after: u64 = locked
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!((4..=6).contains(&retry_after), "{locked:#?}");
}

async fn sign_in_from(app: &TestApp, client: &str, email: &str, password: &str) -> Reply {
    let response = app
        .http
        .post(format!("{}/auth/signin", app.url))
        .header("x-forwarded-for", client)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or_default(),
        text,
    }
}

/// A wave of simultaneous guesses: attempts are counted when they start,
/// so at most one more than the allowed failures reaches Argon2; the rest
/// are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_simultaneous_guesses_gets_at_most_one_extra_attempt() {
    let app = TestApp::spawn_with(Backend::Module, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.signin_max_failures = 3;
        s.signin_lockout_ms = 60_000;
    })
    .await;
    app.insert_admin(ADMIN_EMAIL).await;
    let guesses = (0..30).map(|i| {
        let from = format!("203.0.113.{i}");
        let app = &app;
        async move { sign_in_from(app, &from, ADMIN_EMAIL, &format!("guess-{i}-xxxx")).await }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    let locked = answers
        .iter()
        .filter(|r| r.status == 429 && r.json["error"]["code"] == "signin_locked")
        .count();
    assert_eq!(checked + locked, 30, "{answers:#?}");
    assert!((3..=4).contains(&checked), "{checked} reached Argon2");
}
