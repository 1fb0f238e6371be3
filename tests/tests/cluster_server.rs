//! The engine on a real Redis Cluster (3 primaries + 3 replicas of
//! redis-server), at the server level: commands sent straight to the node
//! that serves the sale's slot, no platform code. Each test owns its cluster.
//!
//! What the platform relies on: every engine command routes by the sale id
//! and keeps the sale's keys on one primary, for both backends; a node
//! without the module can be told apart; a failover keeps every write a
//! replica acknowledged (`WAIT`), and loses one it did not — which is what
//! the harness's `pause_replication` produces.

use std::time::{Duration, Instant};

use engine::CommandName;
use redis::{Connection, RedisResult, Value};
use tests::{module_path, Backend, ClusterOptions, RedisCluster, Role};

fn start(lua_library: bool) -> RedisCluster {
    let cluster = RedisCluster::start(ClusterOptions {
        module: Some((module_path(), false)),
        ..ClusterOptions::default()
    });
    if lua_library {
        cluster.load_library(&tests::lua_library(false));
    }
    cluster
}

/// `FLASHSALE.<NAME> <sale> args…`, or `FCALL flashsale_<name> 1 <sale> args…`.
fn engine_cmd(backend: Backend, name: CommandName, sale: &str, args: &[String]) -> redis::Cmd {
    let mut cmd = match backend {
        Backend::Module => redis::cmd(name.module_command()),
        Backend::Lua => {
            let mut cmd = redis::cmd("FCALL");
            cmd.arg(name.function_name()).arg(1);
            cmd
        }
    };
    cmd.arg(sale).arg(args);
    cmd
}

/// The outcome word of a successful engine reply.
fn outcome(reply: RedisResult<Value>) -> String {
    match reply.expect("engine reply") {
        Value::Array(items) => items
            .into_iter()
            .next()
            .map(|word| redis::from_redis_value(word).expect("outcome word"))
            .unwrap_or_default(),
        other => panic!("not an engine reply: {other:?}"),
    }
}

fn run(
    conn: &mut Connection,
    backend: Backend,
    name: CommandName,
    sale: &str,
    args: &[&str],
) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    outcome(engine_cmd(backend, name, sale, &args).query(conn))
}

/// Creates `sale`, open now for an hour, 100 units, holds of a minute.
fn setup(conn: &mut Connection, backend: Backend, sale: &str) {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(conn).expect("TIME");
    let now = secs * 1000 + micros / 1000;
    let window = [(now - 1000).to_string(), (now + 3_600_000).to_string()];
    let args = ["100", &window[0], &window[1], "60000"];
    assert_eq!(
        run(conn, backend, CommandName::Setup, sale, &args),
        "created"
    );
}

/// What STATUS says about `user`: `queued`, `holding`, `purchased`, `none`…
fn user_state(conn: &mut Connection, sale: &str, user: &str) -> String {
    let reply: Vec<String> = redis::cmd(CommandName::Status.module_command())
        .arg(sale)
        .arg(user)
        .query(conn)
        .expect("STATUS");
    assert_eq!(reply.get(22).map(String::as_str), Some("user"), "{reply:?}");
    reply[23].clone()
}

fn wait_replicas(conn: &mut Connection, timeout_ms: u64) -> i64 {
    redis::cmd("WAIT")
        .arg(1)
        .arg(timeout_ms)
        .query(conn)
        .expect("WAIT")
}

fn keys(conn: &mut Connection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(conn).expect("KEYS");
    keys.sort();
    keys
}

fn digest(conn: &mut Connection) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(conn)
        .expect("DEBUG DIGEST")
}

/// `COMMAND INFO flashsale.enqueue` is `[nil]` on a node without the module.
fn has_module(conn: &mut Connection) -> bool {
    let info: Vec<Option<Value>> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(CommandName::Enqueue.module_command())
        .query(conn)
        .expect("COMMAND INFO");
    info.first().is_some_and(Option::is_some)
}

/// An error that says the command went to the wrong node, or could not run
/// there because of the cluster.
fn is_cluster_refusal(error: &redis::RedisError) -> bool {
    let code = error.code().unwrap_or_default();
    ["MOVED", "ASK", "CROSSSLOT", "CLUSTERDOWN", "TRYAGAIN"].contains(&code)
        || error.to_string().contains("non local key")
}

#[test]
fn every_engine_command_runs_on_the_sale_primary_and_its_keys_stay_there() {
    let cluster = start(true);
    for (backend, sale) in [
        (Backend::Module, "routed-module"),
        (Backend::Lua, "routed-lua"),
    ] {
        let slot = cluster.slot_of(sale);
        let primary = cluster.primary_for_key(sale);
        let mut conn = cluster.connection(primary);

        setup(&mut conn, backend, sale);
        let ann = "ann@example.com";
        let bob = "bob@example.com";
        assert_eq!(
            run(&mut conn, backend, CommandName::Enqueue, sale, &[ann]),
            "queued"
        );
        assert_eq!(
            run(&mut conn, backend, CommandName::Enqueue, sale, &[bob]),
            "queued"
        );
        assert_eq!(
            run(&mut conn, backend, CommandName::Grant, sale, &["10"]),
            "granted"
        );
        assert_eq!(
            run(
                &mut conn,
                backend,
                CommandName::Confirm,
                sale,
                &[ann, "4999"]
            ),
            "confirmed"
        );
        assert_eq!(
            run(&mut conn, backend, CommandName::Release, sale, &[bob]),
            "released"
        );
        assert_eq!(
            run(&mut conn, backend, CommandName::Status, sale, &[]),
            "state"
        );

        // Every command, with or without valid arguments, is taken by the
        // sale's primary and sent there by every other primary.
        for name in CommandName::ALL {
            if let Err(e) = engine_cmd(backend, name, sale, &[]).query::<Value>(&mut conn) {
                assert!(
                    !is_cluster_refusal(&e),
                    "{backend:?} {name:?} refused on its primary: {e}"
                );
            }
            for other in cluster.primaries().into_iter().filter(|&p| p != primary) {
                let refusal = engine_cmd(backend, name, sale, &[])
                    .query::<Value>(&mut cluster.connection(other))
                    .expect_err("another primary refuses the sale");
                assert_eq!(
                    refusal.code(),
                    Some("MOVED"),
                    "{backend:?} {name:?}: {refusal}"
                );
                assert_eq!(
                    refusal.detail(),
                    Some(format!("{slot} 127.0.0.1:{primary}").as_str()),
                    "{backend:?} {name:?}"
                );
            }
        }

        // The sale's keys are in the sale's slot, on its primary only, and
        // reach its replica.
        let pattern = format!("fs:{{{sale}}}:*");
        let on_primary = keys(&mut conn, &pattern);
        for key in [
            engine::keys::sale(sale),
            engine::keys::orders(sale),
            engine::keys::outbox(sale),
        ] {
            assert!(
                on_primary.contains(&key),
                "{key} missing from {on_primary:?}"
            );
        }
        for key in &on_primary {
            assert_eq!(cluster.slot_of(key), slot, "{key}");
        }
        for other in cluster.primaries().into_iter().filter(|&p| p != primary) {
            assert_eq!(
                keys(&mut cluster.connection(other), &pattern),
                Vec::<String>::new()
            );
        }
        assert_eq!(
            wait_replicas(&mut conn, 5000),
            1,
            "the replica acknowledges"
        );
        let replica = cluster.replica_of(primary);
        assert_eq!(keys(&mut cluster.connection(replica), &pattern), on_primary);
    }
}

/// A cluster with the module, and a sale set up on its primary.
struct SaleCluster {
    cluster: RedisCluster,
    sale: &'static str,
    primary: u16,
    replica: u16,
    /// To the primary.
    conn: Connection,
}

fn module_sale(sale: &'static str) -> SaleCluster {
    let cluster = start(false);
    let primary = cluster.primary_for_key(sale);
    let replica = cluster.replica_of(primary);
    let mut conn = cluster.connection(primary);
    setup(&mut conn, Backend::Module, sale);
    SaleCluster {
        cluster,
        sale,
        primary,
        replica,
        conn,
    }
}

fn enqueue(conn: &mut Connection, sale: &str, user: &str) {
    let reply = run(conn, Backend::Module, CommandName::Enqueue, sale, &[user]);
    assert_eq!(reply, "queued", "ENQUEUE {sale} {user}");
}

#[test]
fn a_node_without_the_module_is_detectable() {
    let mut fixture = module_sale("no-module");
    let (sale, replica) = (fixture.sale, fixture.replica);
    let (cluster, mut conn) = (&mut fixture.cluster, fixture.conn);
    cluster.restart_without_module(replica);
    cluster.wait_healthy();

    for node in cluster.nodes() {
        let mut node_conn = cluster.connection(node.port);
        let expected = node.port != replica;
        assert_eq!(has_module(&mut node_conn), expected, "node {}", node.port);
    }
    // It replicates the module's writes like any replica (they arrive as
    // plain commands), so only asking for the command tells it apart.
    enqueue(&mut conn, sale, "ann@example.com");
    assert_eq!(wait_replicas(&mut conn, 5000), 1);
    let mut on_replica = cluster.connection(replica);
    redis::cmd("READONLY")
        .query::<()>(&mut on_replica)
        .expect("READONLY");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(engine::keys::queue(sale))
        .query(&mut on_replica)
        .expect("EXISTS");
    assert_eq!(exists, 1);
}

fn pexpiretime(conn: &mut Connection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query(conn)
        .expect("PEXPIRETIME")
}

#[test]
fn a_failover_keeps_every_write_the_replica_acknowledged() {
    let mut fixture = module_sale("failover-acked");
    let (sale, primary, replica) = (fixture.sale, fixture.primary, fixture.replica);
    let (cluster, mut conn) = (&mut fixture.cluster, fixture.conn);
    let (ann, bob) = ("ann@example.com", "bob@example.com");
    enqueue(&mut conn, sale, ann);
    enqueue(&mut conn, sale, bob);
    let granted = run(&mut conn, Backend::Module, CommandName::Grant, sale, &["1"]);
    assert_eq!(granted, "granted");
    let hold = engine::keys::hold(sale, ann);
    let expires = pexpiretime(&mut conn, &hold);
    assert!(expires > 0);
    assert_eq!(
        wait_replicas(&mut conn, 1000),
        1,
        "the replica acknowledges"
    );
    let before = digest(&mut conn);

    cluster.kill(primary);
    let promoted = cluster.wait_for_failover(primary);
    assert_eq!(promoted, replica);
    assert_eq!(cluster.primary_for_key(sale), promoted);

    let mut conn = cluster.connection(promoted);
    assert_eq!(
        digest(&mut conn),
        before,
        "the keyspace survives the failover"
    );
    assert_eq!(user_state(&mut conn, sale, ann), "holding");
    assert_eq!(user_state(&mut conn, sale, bob), "queued");
    assert_eq!(
        pexpiretime(&mut conn, &hold),
        expires,
        "the hold keeps its expiry"
    );
    let confirmed = run(
        &mut conn,
        Backend::Module,
        CommandName::Confirm,
        sale,
        &[ann, "4999"],
    );
    assert_eq!(confirmed, "confirmed");

    // The old primary comes back as the new one's replica.
    cluster.restart(primary);
    cluster.wait_healthy();
    let old = cluster
        .nodes()
        .into_iter()
        .find(|n| n.port == primary)
        .expect("old primary");
    assert_eq!((old.role, old.primary), (Role::Replica, Some(promoted)));
}

#[test]
fn a_lagging_replica_loses_the_writes_it_did_not_acknowledge() {
    let mut fixture = module_sale("failover-lagging");
    let (sale, primary, replica) = (fixture.sale, fixture.primary, fixture.replica);
    let (cluster, mut conn) = (&mut fixture.cluster, fixture.conn);
    enqueue(&mut conn, sale, "ann@example.com");
    assert_eq!(wait_replicas(&mut conn, 1000), 1);

    // Paused, the replica misses writes; resumed, it catches up.
    cluster.pause_replication(replica);
    enqueue(&mut conn, sale, "bob@example.com");
    assert_eq!(wait_replicas(&mut conn, 200), 0, "the paused replica lags");
    cluster.resume_replication(replica);
    let deadline = Instant::now() + Duration::from_secs(30);
    while wait_replicas(&mut conn, 1000) != 1 {
        assert!(
            Instant::now() < deadline,
            "the resumed replica never caught up"
        );
    }

    // Paused again, then its primary dies: what it missed is gone.
    cluster.pause_replication(replica);
    enqueue(&mut conn, sale, "carol@example.com");
    assert_eq!(wait_replicas(&mut conn, 200), 0, "the paused replica lags");
    cluster.kill(primary);
    cluster.resume_replication(replica);
    let promoted = cluster.wait_for_failover(primary);
    assert_eq!(promoted, replica);

    let mut conn = cluster.connection(promoted);
    assert_eq!(user_state(&mut conn, sale, "ann@example.com"), "queued");
    assert_eq!(user_state(&mut conn, sale, "bob@example.com"), "queued");
    let carol = user_state(&mut conn, sale, "carol@example.com");
    assert_eq!(carol, "none", "the unacknowledged write is lost");
}
