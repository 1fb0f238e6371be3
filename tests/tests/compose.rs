//! docker-compose.yml and the Dockerfiles it builds, checked against the code
//! (no Docker needed): the settings the compose file sets are the ones the
//! binaries read, ports and addresses agree with the code's defaults and with
//! the healthchecks, the module is loaded from where the image puts it, AOF
//! fsyncs every write, MongoDB is a replica set the apps connect to as one,
//! and every service waits for healthy dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn compose() -> Value {
    serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose
        .get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

fn services(compose: &Value) -> Vec<(String, &Value)> {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("docker-compose.yml has a services mapping")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("service names are strings").to_string(),
                v,
            )
        })
        .collect()
}

/// A scalar as text (YAML numbers and booleans too).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `command`, `entrypoint` or a healthcheck `test`, as a list of words.
fn words(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| scalar(v).unwrap_or_else(|| panic!("not a scalar: {v:?}")))
            .collect(),
        Some(other) => panic!("expected a string or a list, got {other:?}"),
    }
}

/// A service's environment, map or list form; `None` = passed through from
/// the shell (`NAME:` / `- NAME`).
fn environment(service: &Value) -> BTreeMap<String, Option<String>> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| {
                let name = k.as_str().expect("variable names are strings").to_string();
                let value = match v {
                    Value::Null => None,
                    v => Some(scalar(v).unwrap_or_else(|| panic!("{name}: not a scalar"))),
                };
                (name, value)
            })
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = item.as_str().expect("environment entries are strings");
                match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (item.to_string(), None),
                }
            })
            .collect(),
        Some(other) => panic!("environment: unexpected {other:?}"),
    }
}

fn env_value(service: &Value, name: &str) -> String {
    environment(service)
        .get(name)
        .cloned()
        .flatten()
        .unwrap_or_else(|| panic!("{name} is not set"))
}

/// Every `env = "NAME"` in a settings file: the variables that binary reads.
fn env_names_in(rel: &str) -> BTreeSet<String> {
    let text = read(rel);
    let names: BTreeSet<String> = text
        .match_indices("env = \"")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest[..rest.find('"').expect("closing quote")].to_string()
        })
        .collect();
    assert!(names.len() >= 5, "{rel}: found only {names:?}");
    names
}

/// The default of the clap argument read from `env = "NAME"` in a settings
/// file (`default_value_t = X` or `default_value = "X"`).
fn code_default(rel: &str, name: &str) -> String {
    let text = read(rel);
    let at = text
        .find(&format!("env = \"{name}\""))
        .unwrap_or_else(|| panic!("{rel} does not read {name}"));
    let start = text[..at].rfind("#[arg(").expect("inside #[arg(...)]");
    let end = at + text[at..].find(")]").expect("end of #[arg(...)]");
    let attr = &text[start..end];
    if let Some(i) = attr.find("default_value_t = ") {
        let rest = &attr[i + "default_value_t = ".len()..];
        let end = rest.find([',', ')', '\n']).unwrap_or(rest.len());
        return rest[..end].trim().to_string();
    }
    if let Some(i) = attr.find("default_value = \"") {
        let rest = &attr[i + "default_value = \"".len()..];
        return rest[..rest.find('"').expect("closing quote")].to_string();
    }
    panic!("{rel}: {name} has no default");
}

/// The variables a service's binary reads, chosen by its command.
fn settings_file_of(name: &str, service: &Value) -> &'static str {
    let command = words(service.get("command"));
    match command.first().map(String::as_str) {
        Some("flashsale-api") => "api/src/config.rs",
        Some("flashsale-worker") => "worker/src/config.rs",
        other => panic!("service {name}: unexpected command {other:?}"),
    }
}

/// `build` as (context dir, Dockerfile path, target), both paths absolute.
fn build_of(name: &str, service: &Value) -> Option<(PathBuf, PathBuf, Option<String>)> {
    let build = service.get("build")?;
    let (context, dockerfile, target) = match build {
        Value::String(context) => (context.clone(), "Dockerfile".to_string(), None),
        Value::Mapping(_) => (
            build
                .get("context")
                .and_then(Value::as_str)
                .unwrap_or(".")
                .to_string(),
            build
                .get("dockerfile")
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile")
                .to_string(),
            build
                .get("target")
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        other => panic!("service {name}: build is {other:?}"),
    };
    let context = root().join(context);
    let dockerfile = context.join(dockerfile);
    Some((context, dockerfile, target))
}

/// A Dockerfile as (instruction, arguments), continuation lines joined and
/// comments dropped.
fn dockerfile_instructions(path: &Path) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        let (instr, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        out.push((instr.to_ascii_uppercase(), args.trim().to_string()));
    }
    out
}

/// The instructions of the last stage (the image that runs).
fn final_stage(instructions: &[(String, String)]) -> &[(String, String)] {
    let last_from = instructions
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("a FROM");
    &instructions[last_from..]
}

/// The Dockerfile a compose service is built from.
fn dockerfile_of(compose: &Value, name: &str) -> Vec<(String, String)> {
    let (_, dockerfile, _) =
        build_of(name, service(compose, name)).unwrap_or_else(|| panic!("{name} has no build"));
    dockerfile_instructions(&dockerfile)
}

/// The destination of the COPY that brings `file` into the final stage.
fn copy_destination(stage: &[(String, String)], file: &str) -> String {
    let (_, args) = stage
        .iter()
        .find(|(i, args)| i == "COPY" && args.contains(file))
        .unwrap_or_else(|| panic!("no COPY of {file} in the final stage"));
    let parts: Vec<&str> = args
        .split_whitespace()
        .filter(|p| !p.starts_with("--"))
        .collect();
    let dest = parts.last().expect("COPY has a destination").to_string();
    if dest.ends_with('/') {
        format!("{dest}{file}")
    } else {
        dest
    }
}

fn depends_on(name: &str, service: &Value) -> BTreeMap<String, String> {
    match service.get("depends_on") {
        None => BTreeMap::new(),
        Some(Value::Mapping(map)) => map
            .iter()
            .map(|(k, v)| {
                let dep = k.as_str().expect("service name").to_string();
                let condition = v
                    .get("condition")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{name} -> {dep}: no condition"))
                    .to_string();
                (dep, condition)
            })
            .collect(),
        Some(other) => panic!(
            "{name}: depends_on must be a mapping with conditions (a list only waits for the start): {other:?}"
        ),
    }
}

/// `scheme://host:port/path?query` → (host, port, query).
fn url_parts(url: &str) -> (String, Option<u16>, String) {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), Some(p.parse().expect("numeric port"))),
        None => (authority.to_string(), None),
    };
    let query = tail
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    (host, port, query)
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

fn healthcheck(name: &str, service: &Value) -> Vec<String> {
    let test = words(
        service
            .get("healthcheck")
            .and_then(|h| h.get("test"))
            .map(Some)
            .unwrap_or_else(|| panic!("{name} has no healthcheck")),
    );
    assert!(
        matches!(test.first().map(String::as_str), Some("CMD" | "CMD-SHELL")),
        "{name}: healthcheck test must start with CMD or CMD-SHELL: {test:?}"
    );
    test
}

/// The value following `flag` in a command.
fn flag_value(command: &[String], flag: &str) -> Option<String> {
    command
        .iter()
        .position(|w| w == flag)
        .and_then(|i| command.get(i + 1).cloned())
}

#[test]
fn the_services_exist() {
    let compose = compose();
    for name in ["redis", "mongo", "api", "worker", "seed-admin"] {
        service(&compose, name);
    }
    let seed = service(&compose, "seed-admin");
    assert_eq!(
        words(seed.get("command")),
        ["flashsale-api", "seed-admin"],
        "seed-admin runs flashsale-api seed-admin"
    );
    let profiles = words(seed.get("profiles"));
    assert!(
        profiles.iter().any(|p| p == "setup"),
        "seed-admin is a one-shot in the setup profile, not started by `up`: {profiles:?}"
    );
    assert_eq!(
        words(service(&compose, "worker").get("command"))
            .first()
            .map(String::as_str),
        Some("flashsale-worker")
    );
    assert_eq!(
        words(service(&compose, "api").get("command"))
            .first()
            .map(String::as_str),
        Some("flashsale-api")
    );
}

#[test]
fn build_contexts_dockerfiles_and_targets_exist() {
    let compose = compose();
    let mut built = 0;
    for (name, svc) in services(&compose) {
        let Some((context, dockerfile, target)) = build_of(&name, svc) else {
            continue;
        };
        built += 1;
        assert!(
            context.is_dir(),
            "{name}: build context {} missing",
            context.display()
        );
        assert!(
            dockerfile.is_file(),
            "{name}: {} missing",
            dockerfile.display()
        );
        let instructions = dockerfile_instructions(&dockerfile);
        if let Some(target) = target {
            let stages: Vec<String> = instructions
                .iter()
                .filter(|(i, _)| i == "FROM")
                .filter_map(|(_, args)| {
                    let parts: Vec<&str> = args.split_whitespace().collect();
                    parts
                        .iter()
                        .position(|p| p.eq_ignore_ascii_case("as"))
                        .and_then(|i| parts.get(i + 1))
                        .map(|s| s.to_string())
                })
                .collect();
            assert!(
                stages.contains(&target),
                "{name}: target {target:?} is not a stage of {} ({stages:?})",
                dockerfile.display()
            );
        }
    }
    for name in ["redis", "api", "worker", "seed-admin"] {
        assert!(
            build_of(name, service(&compose, name)).is_some(),
            "{name} is built from this repository"
        );
    }
    assert!(built >= 4);
    assert!(
        root().join(".dockerignore").is_file(),
        ".dockerignore keeps target/ and .git out of the context"
    );
    let ignore = read(".dockerignore");
    for must in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == must),
            ".dockerignore must exclude {must}"
        );
    }
    assert!(
        !ignore
            .lines()
            .any(|l| l.trim().trim_end_matches('/') == "api/web"),
        "api/web is compiled into flashsale-api; it must stay in the context"
    );
}

#[test]
fn every_environment_variable_is_read_by_the_code() {
    let compose = compose();
    for name in ["api", "worker", "seed-admin"] {
        let svc = service(&compose, name);
        let file = settings_file_of(name, svc);
        let crate_dir = file.split('/').next().expect("crate dir");
        let mut known = env_names_in(file);
        // tracing-subscriber's EnvFilter reads RUST_LOG, if the binary uses it.
        if read(&format!("{crate_dir}/src/telemetry.rs"))
            .contains("EnvFilter::try_from_default_env")
        {
            known.insert("RUST_LOG".into());
        }
        let env = environment(svc);
        assert!(!env.is_empty(), "{name} sets no environment");
        for var in env.keys() {
            assert!(
                known.contains(var),
                "{name} sets {var}, which {file} does not read (it reads {known:?})"
            );
        }
    }
    // The names the brief relies on really are the code's.
    let api = env_names_in("api/src/config.rs");
    for var in [
        "BEND_HOST",
        "BEND_PORT",
        "REDIS_URL",
        "MONGO_URL",
        "MONGO_DB",
        "JWT_SECRET",
        "HOLD_TTL_SECONDS",
        "CORS_ORIGINS",
        "TRUSTED_PROXIES",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
    ] {
        assert!(api.contains(var), "api/src/config.rs no longer reads {var}");
    }
    let worker = env_names_in("worker/src/config.rs");
    for var in ["REDIS_URL", "MONGO_URL", "MONGO_DB", "WORKER_METRICS_ADDR"] {
        assert!(
            worker.contains(var),
            "worker/src/config.rs no longer reads {var}"
        );
    }
}

#[test]
fn the_api_is_configured_for_a_container() {
    let compose = compose();
    let api = service(&compose, "api");
    assert_eq!(
        env_value(api, "BEND_HOST"),
        "0.0.0.0",
        "the API must listen on all interfaces in its container (the code's default is {})",
        code_default("api/src/config.rs", "BEND_HOST")
    );
    let secret = env_value(api, "JWT_SECRET");
    assert!(
        secret.starts_with("${JWT_SECRET:?"),
        "JWT_SECRET must come from the environment and be required (${{JWT_SECRET:?...}}), got {secret:?}"
    );
    for (name, file) in [
        ("api", "api/src/config.rs"),
        ("worker", "worker/src/config.rs"),
    ] {
        let svc = service(&compose, name);
        let (host, port, _) = url_parts(&env_value(svc, "REDIS_URL"));
        assert_eq!(
            host, "redis",
            "{name}: REDIS_URL must name the redis service"
        );
        assert_eq!(port.unwrap_or(6379), 6379, "{name}: redis listens on 6379");
        if let Some(Some(engine)) = environment(svc).get("ENGINE") {
            assert_eq!(engine, "module", "{name}: the redis image has the module");
        }
        assert!(
            code_default(file, "REDIS_URL").contains("6390"),
            "{file}: REDIS_URL default changed; the compose file sets it explicitly anyway"
        );
    }
}

#[test]
fn the_published_api_port_is_the_code_default() {
    let compose = compose();
    let api = service(&compose, "api");
    let default: u16 = code_default("api/src/config.rs", "BEND_PORT")
        .parse()
        .expect("BEND_PORT default is a number");
    if let Some(port) = environment(api).get("BEND_PORT").cloned().flatten() {
        assert_eq!(port.parse::<u16>().ok(), Some(default), "BEND_PORT");
    }
    let ports = api
        .get("ports")
        .and_then(Value::as_sequence)
        .expect("api publishes a port");
    assert_eq!(ports.len(), 1, "api publishes exactly one port");
    let (published, target) = match &ports[0] {
        Value::Mapping(_) => (
            ports[0]
                .get("published")
                .and_then(scalar)
                .expect("published"),
            ports[0].get("target").and_then(scalar).expect("target"),
        ),
        other => {
            let spec = scalar(other).expect("a port string");
            let spec = spec.split('/').next().unwrap_or(&spec).to_string();
            let mut parts: Vec<&str> = spec.split(':').collect();
            let target = parts.pop().expect("container port").to_string();
            let published = parts.pop().expect("published port").to_string();
            (published, target)
        }
    };
    assert_eq!(
        target.parse::<u16>().ok(),
        Some(default),
        "api container port"
    );
    assert_eq!(
        published.parse::<u16>().ok(),
        Some(default),
        "api published port"
    );

    let test = healthcheck("api", api);
    let url = test
        .iter()
        .find(|w| w.contains("/readyz"))
        .expect("api healthcheck requests /readyz");
    let (host, port, _) = url_parts(url);
    assert!(host == "127.0.0.1" || host == "localhost", "{url}");
    assert_eq!(port, Some(default), "api healthcheck port: {url}");
    let app = dockerfile_of(&compose, "api");
    let runtime = final_stage(&app);
    assert!(
        runtime
            .iter()
            .any(|(i, args)| i == "EXPOSE"
                && args.split_whitespace().any(|p| p == default.to_string())),
        "the app image exposes {default}"
    );
}

#[test]
fn the_worker_healthcheck_uses_its_metrics_port() {
    let compose = compose();
    let worker = service(&compose, "worker");
    let addr: SocketAddr = env_value(worker, "WORKER_METRICS_ADDR")
        .parse()
        .expect("WORKER_METRICS_ADDR is host:port");
    assert!(
        addr.ip().is_unspecified(),
        "WORKER_METRICS_ADDR must listen on all interfaces so it can be scraped: {addr}"
    );
    let default: SocketAddr = code_default("worker/src/config.rs", "WORKER_METRICS_ADDR")
        .parse()
        .expect("default metrics address");
    assert_eq!(addr.port(), default.port(), "the documented metrics port");
    let test = healthcheck("worker", worker);
    let url = test
        .iter()
        .find(|w| w.contains("/healthz"))
        .expect("worker healthcheck requests /healthz");
    let (_, port, _) = url_parts(url);
    assert_eq!(port, Some(addr.port()), "worker healthcheck port: {url}");
    // Several replicas cannot publish one host port.
    let replicas = worker
        .get("deploy")
        .and_then(|d| d.get("replicas"))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if replicas > 1 {
        assert!(
            worker.get("ports").is_none(),
            "{replicas} worker replicas cannot share a published port"
        );
        assert!(worker.get("container_name").is_none());
    }
}

#[test]
fn healthchecks_need_only_what_the_images_have() {
    let compose = compose();
    let app = dockerfile_of(&compose, "api");
    let runtime = final_stage(&app);
    for name in ["api", "worker"] {
        let test = healthcheck(name, service(&compose, name));
        if test.iter().any(|w| w == "curl" || w.starts_with("curl ")) {
            assert!(
                runtime.iter().any(|(i, args)| i == "RUN"
                    && args.contains("install")
                    && args.split_whitespace().any(|w| w == "curl")),
                "{name}'s healthcheck uses curl: the runtime image must install it"
            );
        }
    }
    // The app image runs as a non-root user and holds both binaries.
    let user = runtime
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, u)| u.clone())
        .expect("the runtime stage sets USER");
    let user_name = user.split(':').next().unwrap_or(&user);
    assert!(
        user_name != "root" && user_name != "0",
        "runs as root: {user}"
    );
    for bin in ["flashsale-api", "flashsale-worker"] {
        copy_destination(runtime, bin);
    }
    let build_cmds: String = app
        .iter()
        .filter(|(i, args)| i == "RUN" && args.contains("cargo build"))
        .map(|(_, a)| a.clone())
        .collect();
    for pkg in ["-p api", "-p worker", "--release"] {
        assert!(
            build_cmds.contains(pkg),
            "app Dockerfile: cargo build {pkg}"
        );
    }
}

#[test]
fn named_volumes_are_declared() {
    let compose = compose();
    let declared: BTreeSet<String> = compose
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut used = BTreeMap::new();
    for (name, svc) in services(&compose) {
        for v in svc
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let (source, target) = match v {
                Value::String(s) => {
                    let mut parts = s.split(':');
                    let source = parts.next().unwrap_or_default().to_string();
                    let target = parts.next().map(str::to_string);
                    match target {
                        Some(t) => (source, t),
                        None => continue, // anonymous volume
                    }
                }
                Value::Mapping(_) => {
                    if v.get("type").and_then(Value::as_str) != Some("volume") {
                        continue;
                    }
                    (
                        v.get("source")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        v.get("target")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    )
                }
                other => panic!("{name}: volume {other:?}"),
            };
            if source.is_empty() || source.starts_with(['.', '/', '~', '$']) {
                continue; // bind mount
            }
            assert!(
                declared.contains(&source),
                "{name} uses volume {source:?}, not declared under volumes: {declared:?}"
            );
            used.insert((name.clone(), target), source);
        }
    }
    assert!(
        used.contains_key(&("redis".to_string(), "/data".to_string())),
        "redis keeps its AOF in a named volume at /data"
    );
    assert!(
        used.contains_key(&("mongo".to_string(), "/data/db".to_string())),
        "mongo keeps its data in a named volume at /data/db"
    );
}

#[test]
fn dependencies_wait_until_healthy() {
    let compose = compose();
    let mut edges = 0;
    for (name, svc) in services(&compose) {
        for (dep, condition) in depends_on(&name, svc) {
            edges += 1;
            assert_eq!(condition, "service_healthy", "{name} -> {dep}");
            healthcheck(&dep, service(&compose, &dep));
        }
    }
    for name in ["api", "worker"] {
        let deps = depends_on(name, service(&compose, name));
        for dep in ["redis", "mongo"] {
            assert_eq!(
                deps.get(dep).map(String::as_str),
                Some("service_healthy"),
                "{name} waits for a healthy {dep}"
            );
        }
    }
    assert_eq!(
        depends_on("seed-admin", service(&compose, "seed-admin"))
            .get("mongo")
            .map(String::as_str),
        Some("service_healthy")
    );
    assert!(edges >= 5);
}

#[test]
fn redis_loads_the_module_from_the_image_and_fsyncs_every_write() {
    let compose = compose();
    let redis = service(&compose, "redis");
    let command = words(redis.get("command"));
    assert_eq!(
        command.first().map(String::as_str),
        Some("redis-server"),
        "{command:?}"
    );
    let dockerfile = dockerfile_of(&compose, "redis");
    let runtime = final_stage(&dockerfile);
    let image = runtime[0]
        .1
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    // `FROM ${REDIS_IMAGE}`: the build argument's default is what a user
    // with internet gets (offline builds pass a local stand-in).
    let image = match image
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(arg) => dockerfile
            .iter()
            .find_map(|(i, a)| (i == "ARG").then(|| a.strip_prefix(&format!("{arg}=")))?)
            .unwrap_or_else(|| panic!("ARG {arg}=<default> for FROM ${{{arg}}}"))
            .to_string(),
        None => image,
    };
    assert!(
        image.starts_with("redis:7."),
        "the redis image is Redis 7.x by default: FROM {image}"
    );
    let so = copy_destination(runtime, "libflashsale_module.so");
    assert_eq!(
        flag_value(&command, "--loadmodule").as_deref(),
        Some(so.as_str()),
        "redis must load the module from where the Dockerfile copies it"
    );
    assert_eq!(flag_value(&command, "--appendonly").as_deref(), Some("yes"));
    assert_eq!(
        flag_value(&command, "--appendfsync").as_deref(),
        Some("always")
    );
    // How the builder stage compiles the module is proven by building it
    // (scripts/docker-images, scripts/compose-check), not by reading it.
    // Healthy means the module's commands exist, not only that Redis
    // answers: `COMMAND INFO <a module command>`, and its output checked
    // (for an unknown command redis-cli prints an empty line, exit code 0).
    let test = healthcheck("redis", redis).join(" ");
    assert!(test.contains("redis-cli ping"), "{test}");
    let at = test
        .find("COMMAND INFO ")
        .unwrap_or_else(|| panic!("the redis healthcheck asks COMMAND INFO: {test}"));
    let after = &test[at + "COMMAND INFO ".len()..];
    let command_name = after
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    // The module registers every engine command (engine/src/command.rs) in
    // lower case, the case COMMAND INFO then prints.
    let commands_src = read("engine/src/command.rs");
    let module_src = read("module/src/lib.rs");
    assert!(
        command_name.starts_with("flashsale.")
            && commands_src.contains(&format!("\"{}\"", command_name.to_ascii_uppercase()))
            && module_src.contains("module_command().to_ascii_lowercase()"),
        "the healthcheck asks for {command_name:?}, which the module does not register"
    );
    let checked = after
        .split("|")
        .skip(1)
        .any(|stage| stage.contains("grep") && stage.contains(&command_name));
    assert!(
        checked,
        "the healthcheck must check COMMAND INFO's output names {command_name}: {test}"
    );
}

#[test]
fn mongo_is_a_replica_set_and_the_apps_connect_to_it() {
    let compose = compose();
    let mongo = service(&compose, "mongo");
    let image = mongo
        .get("image")
        .and_then(Value::as_str)
        .expect("mongo image");
    assert!(image.starts_with("mongo:7"), "{image}");
    let command = words(mongo.get("command"));
    let replset = flag_value(&command, "--replSet").expect("mongo runs with --replSet");
    assert!(command.iter().any(|w| w == "--bind_ip_all"), "{command:?}");
    let test = healthcheck("mongo", mongo).join(" ");
    assert!(
        test.contains("rs.initiate"),
        "the healthcheck initiates the replica set"
    );
    assert!(
        test.contains(&format!("_id: '{replset}'")) || test.contains(&format!("_id:'{replset}'")),
        "the healthcheck initiates {replset}: {test}"
    );
    assert!(
        test.contains("mongo:27017"),
        "the member's host is the service name: {test}"
    );
    for name in ["api", "worker", "seed-admin"] {
        let url = env_value(service(&compose, name), "MONGO_URL");
        let (host, port, query) = url_parts(&url);
        assert_eq!(
            host, "mongo",
            "{name}: MONGO_URL must name the mongo service: {url}"
        );
        assert_eq!(port.unwrap_or(27017), 27017, "{url}");
        let names_set = query_param(&query, "replicaSet").as_deref() == Some(replset.as_str());
        let direct = query_param(&query, "directConnection").as_deref() == Some("true");
        assert!(
            names_set || direct,
            "{name}: MONGO_URL must name replica set {replset} (or directConnection=true): {url}"
        );
        assert_eq!(
            env_value(service(&compose, name), "MONGO_DB"),
            code_default(settings_file_of(name, service(&compose, name)), "MONGO_DB"),
            "{name}: MONGO_DB"
        );
    }
}
