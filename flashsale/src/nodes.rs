//! The engine on every node. A single server is one node; on a cluster the
//! module must be loaded on every node, replicas included (a replica is
//! promoted on failover and then serves the sale), and the Functions library
//! loaded on every primary (`FUNCTION LOAD` reaches only the node it is sent
//! to; replicas copy it from their primary). Each node is checked over a
//! connection of its own, at the address the cluster announces for it.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::Value;

use crate::{Backend, BackendChoice, ClientError, RedisConn, LUA_LIBRARY};

/// One node as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `host:port`
    pub address: String,
    pub primary: bool,
}

/// Makes sure every node can run the engine `choice` asks for, loading the
/// Functions library where it is missing or outdated, and says which
/// backend to use. A node without the module when the module is required
/// (or, with `auto`, when some nodes have it and others do not) is
/// [`ClientError::EngineMissing`], naming the node.
pub async fn prepare(conn: &mut RedisConn, choice: BackendChoice) -> Result<Backend, ClientError> {
    match conn {
        RedisConn::Server(server) => prepare_node(server, choice, "the Redis server").await,
        RedisConn::Cluster(link) => {
            let nodes = cluster_nodes(link.connection()).await?;
            let mut with_module = Vec::new();
            let mut connections = Vec::with_capacity(nodes.len());
            for node in &nodes {
                let mut node_conn = connect_node(&node.address).await?;
                serving(&mut node_conn).await?;
                with_module.push(has_module(&mut node_conn).await?);
                connections.push(node_conn);
            }
            let backend = match choice {
                BackendChoice::Lua => Backend::Lua,
                BackendChoice::Auto if !with_module.contains(&true) => Backend::Lua,
                BackendChoice::Auto | BackendChoice::Module => Backend::Module,
            };
            if backend == Backend::Module {
                if let Some((node, _)) = nodes.iter().zip(&with_module).find(|(_, has)| !**has) {
                    return Err(ClientError::EngineMissing(format!(
                        "the FLASHSALE module is not loaded on cluster node {} ({}); \
                         load it on every node, replicas included, or use ENGINE=lua",
                        node.address,
                        if node.primary { "primary" } else { "replica" }
                    )));
                }
                return Ok(Backend::Module);
            }
            for (node, node_conn) in nodes.iter().zip(&mut connections) {
                if node.primary {
                    ensure_library(node_conn).await?;
                }
            }
            Ok(Backend::Lua)
        }
    }
}

/// [`prepare`] on one connection that is the whole deployment.
pub(crate) async fn prepare_node<C: ConnectionLike + Send>(
    conn: &mut C,
    choice: BackendChoice,
    what: &str,
) -> Result<Backend, ClientError> {
    serving(conn).await?;
    let backend = match choice {
        BackendChoice::Module => Backend::Module,
        BackendChoice::Lua => Backend::Lua,
        BackendChoice::Auto if has_module(conn).await? => Backend::Module,
        BackendChoice::Auto => Backend::Lua,
    };
    match backend {
        Backend::Module if !has_module(conn).await? => Err(ClientError::EngineMissing(format!(
            "the FLASHSALE module is not loaded on {what}"
        ))),
        Backend::Lua => ensure_library(conn).await.map(|()| Backend::Lua),
        Backend::Module => Ok(Backend::Module),
    }
}

/// The cluster's nodes that are up, from `CLUSTER NODES` (asked of any node).
async fn cluster_nodes(
    cluster: &mut redis::cluster_async::ClusterConnection,
) -> Result<Vec<Node>, ClientError> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(cluster)
        .await?;
    Ok(parse_cluster_nodes(&text))
}

/// `<id> <ip:port@cport[,hostname]> <flags> <primary> …` per line; nodes that
/// failed, are leaving or have no address are left out.
pub fn parse_cluster_nodes(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_id, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
            let flags: Vec<&str> = flags.split(',').collect();
            let down = ["fail", "fail?", "handshake", "noaddr"];
            if flags.iter().any(|f| down.contains(f)) {
                return None;
            }
            let address = address.split(['@', ',']).next()?.to_string();
            if address.starts_with(':') {
                return None;
            }
            Some(Node {
                address,
                primary: flags.contains(&"master"),
            })
        })
        .collect()
}

/// In `CLUSTER NODES` as the primary itself answers it: how many replicas
/// are assigned to it (`myself` is the primary), whatever their state.
pub fn replicas_of_myself(text: &str) -> u64 {
    let fields = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let Some(me) = text
        .lines()
        .map(fields)
        .find(|f| {
            f.get(2)
                .is_some_and(|flags| flags.split(',').any(|x| x == "myself"))
        })
        .and_then(|f| f.first().cloned())
    else {
        return 0;
    };
    text.lines()
        .map(fields)
        .filter(|f| {
            f.get(2)
                .is_some_and(|flags| flags.split(',').any(|x| x == "slave"))
                && f.get(3) == Some(&me)
        })
        .count() as u64
}

async fn connect_node(address: &str) -> Result<MultiplexedConnection, ClientError> {
    let client = redis::Client::open(format!("redis://{address}/"))?;
    Ok(client.get_multiplexed_async_connection().await?)
}

/// Fails (unavailable) while the node cannot serve data: `COMMAND INFO`
/// and `FUNCTION LIST` are answered while Redis is still loading its
/// dataset, `PING` is refused with `LOADING` then.
async fn serving<C: ConnectionLike + Send>(conn: &mut C) -> Result<(), ClientError> {
    redis::cmd("PING")
        .query_async::<()>(conn)
        .await
        .map_err(ClientError::from_redis)
}

pub(crate) async fn has_module<C: ConnectionLike + Send>(
    conn: &mut C,
) -> Result<bool, ClientError> {
    let info: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("flashsale.enqueue")
        .query_async(conn)
        .await?;
    Ok(matches!(info, Value::Array(items) if items.iter().any(|i| *i != Value::Nil)))
}

/// Loads the functions library unless the server already runs this exact code.
pub(crate) async fn ensure_library<C: ConnectionLike + Send>(
    conn: &mut C,
) -> Result<(), ClientError> {
    let listed: Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("LIBRARYNAME")
        .arg("flashsale")
        .arg("WITHCODE")
        .query_async(conn)
        .await?;
    if library_code(&listed).as_deref() == Some(LUA_LIBRARY) {
        return Ok(());
    }
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(LUA_LIBRARY)
        .query_async::<Value>(conn)
        .await
        .map_err(ClientError::from_redis)?;
    Ok(())
}

/// The `library_code` of the library named exactly `flashsale`, if listed.
fn library_code(listed: &Value) -> Option<String> {
    let Value::Array(libraries) = listed else {
        return None;
    };
    libraries.iter().find_map(|library| {
        let fields: Vec<(&Value, &Value)> = match library {
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|p| Some((p.first()?, p.get(1)?)))
                .collect(),
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            _ => return None,
        };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| as_text(key).as_deref() == Some(name))
                .and_then(|(_, value)| as_text(value))
        };
        (get("library_name").as_deref() == Some("flashsale"))
            .then(|| get("library_code"))
            .flatten()
    })
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_replicas_assigned_to_this_primary_even_when_down() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave,fail e7d1 0 1 4 disconnected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
aa01 127.0.0.1:30007@40007 slave e7d1 0 1 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1 2 connected 5461-10922
b2b2 127.0.0.1:30005@40005 slave 67ed 0 1 2 connected
";
        assert_eq!(replicas_of_myself(text), 2);
        assert_eq!(replicas_of_myself(&text.replace("myself,", "")), 0);
    }

    #[test]
    fn reads_the_nodes_that_are_up() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1 4 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
67ed 127.0.0.1:30002@40002,node-b master - 0 1 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master,fail - 0 1 3 connected 10923-16383
6ec2 :0@0 slave,noaddr 292f 0 1 3 disconnected
";
        assert_eq!(
            parse_cluster_nodes(text),
            vec![
                Node {
                    address: "127.0.0.1:30004".into(),
                    primary: false
                },
                Node {
                    address: "127.0.0.1:30001".into(),
                    primary: true
                },
                Node {
                    address: "127.0.0.1:30002".into(),
                    primary: true
                },
            ]
        );
    }
}
