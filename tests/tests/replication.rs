//! Replication and persistence: after a workload with expiring holds, a
//! replica and an AOF reload hold exactly the primary's data (same
//! `DEBUG DIGEST`). Everything the engine writes replicates as clock-free
//! effects, so nothing may drift.

use std::collections::BTreeMap;
use std::time::Duration;

use flashsale::{ConfirmReply, EngineClient, GrantReply, SetupParams};
use redis::aio::MultiplexedConnection;
use tests::{server_time_ms, wait_for, Backend, EngineServer, RedisServer, ServerOptions};

fn aof_options() -> Vec<(String, String)> {
    vec![
        ("appendonly".into(), "yes".into()),
        ("appendfsync".into(), "always".into()),
    ]
}

/// `DEBUG DIGEST` plus every key's absolute expiry: the digest only notes
/// *that* a key expires, not when, and a drifting expiry is exactly what a
/// clock-reading command replicated verbatim would cause.
async fn digest(conn: &mut MultiplexedConnection) -> (String, BTreeMap<String, i64>) {
    let digest: String = redis::cmd("DEBUG")
        .arg("DIGEST")
        .query_async(conn)
        .await
        .expect("DEBUG DIGEST");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(conn)
        .await
        .expect("KEYS");
    let mut expiries = BTreeMap::new();
    for key in keys {
        let at: i64 = redis::cmd("PEXPIRETIME")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("PEXPIRETIME");
        expiries.insert(key, at);
    }
    (digest, expiries)
}

/// Sells some units, lets some holds lapse and be reclaimed, leaves the rest
/// holding with a long TTL so the data is stable when compared.
async fn workload(
    client: &mut EngineClient<MultiplexedConnection>,
    conn: &mut MultiplexedConnection,
) {
    let now = server_time_ms(conn).await;
    let short = SetupParams {
        stock: 10,
        starts_at: now,
        ends_at: now + 600_000,
        hold_ttl_ms: 150,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    client.setup("rep", short.clone()).await.expect("setup");
    for i in 0..30 {
        client
            .enqueue("rep", &format!("user{i}@example.com"))
            .await
            .expect("enqueue");
    }
    let GrantReply::Granted { users, .. } = client.grant("rep", 10).await.expect("grant") else {
        panic!("sale should be active")
    };
    // Half confirm, the others abandon their holds.
    for user in users.iter().step_by(2) {
        assert!(matches!(
            client.confirm("rep", user, 1250).await.expect("confirm"),
            ConfirmReply::Confirmed { .. }
        ));
    }
    client.release("rep", &users[1]).await.expect("release");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reclaims the lapsed holds (their keys are deleted as effects).
    let long = SetupParams {
        hold_ttl_ms: 60_000,
        ..short
    };
    client.setup("rep", long).await.expect("update");
    let GrantReply::Granted { released, users } = client.grant("rep", 10).await.expect("grant")
    else {
        panic!("sale should be active")
    };
    assert_eq!(released, 4, "the abandoned holds lapsed");
    assert_eq!(users.len(), 5);
    client
        .confirm("rep", &users[0], 990)
        .await
        .expect("confirm");
    client
        .enqueue("rep", "late@example.com")
        .await
        .expect("enqueue");
}

/// A replica of `primary` (with the module when the backend is the module),
/// in sync.
async fn start_replica(primary: &EngineServer) -> (RedisServer, MultiplexedConnection) {
    let module = (primary.backend == Backend::Module).then(|| (tests::module_path(), false));
    let replica = RedisServer::start(ServerOptions {
        module,
        config: vec![(
            "replicaof".into(),
            format!("127.0.0.1 {}", primary.server.port),
        )],
        ..Default::default()
    });
    let replica_conn = replica.connection().await;
    wait_for("the replica to sync", Duration::from_secs(10), || {
        let mut conn = replica_conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .ok()?;
            info.contains("master_link_status:up").then_some(())
        }
    })
    .await;
    (replica, replica_conn)
}

/// How many replicas have every write so far, from any connection: a
/// write on `conn` (WAIT counts only the writes of its own connection, and
/// the replication stream is in order, so a replica that has this one has
/// every earlier one), then `WAIT 1 5000`.
async fn replicas_acked(conn: &mut MultiplexedConnection) -> i64 {
    let (_, acked): (i64, i64) = redis::pipe()
        .cmd("INCR")
        .arg("replication-test:barrier")
        .cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(conn)
        .await
        .expect("INCR + WAIT");
    acked
}

async fn replica_matches_primary(backend: Backend) {
    let primary = EngineServer::start_with(
        backend,
        false,
        ServerOptions {
            config: aof_options(),
            ..Default::default()
        },
    )
    .await;
    let (_replica, mut replica_conn) = start_replica(&primary).await;

    let mut client = primary.client().await;
    let mut conn = primary.server.connection().await;
    workload(&mut client, &mut conn).await;
    assert_eq!(replicas_acked(&mut conn).await, 1);
    let expected = digest(&mut conn).await;
    assert_ne!(expected.0, "0".repeat(40), "the primary has data");
    assert_eq!(
        expected.1.values().filter(|&&at| at > 0).count(),
        4,
        "four live hold keys"
    );
    assert_eq!(
        digest(&mut replica_conn).await,
        expected,
        "replica differs from primary"
    );
}

async fn aof_reload_matches(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ServerOptions {
        config: aof_options(),
        dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let mut primary = EngineServer::start_with(backend, false, options.clone()).await;
    let mut client = primary.client().await;
    let mut conn = primary.server.connection().await;
    workload(&mut client, &mut conn).await;
    let expected = digest(&mut conn).await;
    // Killed without a chance to write anything more: appendfsync always.
    primary.server.kill();
    drop(primary);
    let restarted = EngineServer::start_with(backend, false, options).await;
    let mut conn = restarted.server.connection().await;
    assert_eq!(digest(&mut conn).await, expected, "AOF reload differs");
    // And the sale still works after the reload.
    let mut client = restarted.client().await;
    let status = client
        .status("rep", Some("late@example.com"))
        .await
        .expect("status");
    assert_eq!(status.sale.sold, 6);
    drop(dir);
}

/// Issue 10 on real servers and the real clock: the replica is promoted
/// before the primary's last confirms reach it (as when the primary is
/// killed with a lagging replica), and the primary dies. The next buyers on
/// the new primary never get an id the lost confirms had.
async fn a_promoted_replica_never_reissues_a_lost_order_id(backend: Backend) {
    let primary = EngineServer::start(backend, false).await;
    let (replica, mut replica_conn) = start_replica(&primary).await;
    let mut client = primary.client().await;
    let mut conn = primary.server.connection().await;
    let now = server_time_ms(&mut conn).await;
    let params = SetupParams {
        stock: 10,
        starts_at: now,
        ends_at: now + 600_000,
        hold_ttl_ms: 600_000,
        rate: 0,
        max_queue: 0,
        price: None,
    };
    client.setup("fo3", params).await.expect("setup");
    let users = ["ann", "bob", "cat", "dan", "eve"];
    for user in users {
        client.enqueue("fo3", user).await.expect("enqueue");
    }
    let GrantReply::Granted { users: holders, .. } = client.grant("fo3", 5).await.expect("grant")
    else {
        panic!("sale should be active")
    };
    assert_eq!(holders, users);
    let confirmed = |reply: ConfirmReply| match reply {
        ConfirmReply::Confirmed { order_id, .. } => order_id,
        other => panic!("{other:?}"),
    };
    let ann = confirmed(client.confirm("fo3", "ann", 1).await.expect("confirm"));
    assert_eq!(
        replicas_acked(&mut conn).await,
        1,
        "the replica has ann's order"
    );

    // Promoted: from here on it receives nothing from the old primary.
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut replica_conn)
        .await
        .expect("REPLICAOF NO ONE");
    let mut lost = Vec::new();
    for user in ["dan", "cat"] {
        lost.push(confirmed(
            client.confirm("fo3", user, 1).await.expect("confirm"),
        ));
    }
    drop(client);
    drop(primary);

    let mut successor = EngineClient::attach(replica_conn.clone(), backend);
    let status = successor.status("fo3", None).await.expect("status");
    assert_eq!(status.sale.sold, 1, "the last orders were lost");
    let mut issued = vec![ann.clone()];
    issued.extend(lost.iter().cloned());
    let number = |id: &str| flashsale::keys::order_number("fo3", id).expect("an order id");
    let highest_lost = lost.iter().map(|id| number(id)).max().unwrap_or(0);
    for user in ["bob", "dan", "eve"] {
        let id = confirmed(successor.confirm("fo3", user, 1).await.expect("confirm"));
        assert!(
            !issued.contains(&id),
            "{user} got {id}, issued before: {issued:?}"
        );
        assert!(number(&id) > highest_lost, "{id} after {lost:?}");
        issued.push(id);
    }
    drop(replica);
}

tests::on_both_backends!(
    replica_matches_primary,
    aof_reload_matches,
    a_promoted_replica_never_reissues_a_lost_order_id,
);
