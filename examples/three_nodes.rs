//! Three replicas of the key-value machine in one process, on loopback, with a shared
//! secret: write through the cluster, read back linearizably, stop the leader, and keep
//! going on the other two.
//!
//! `cargo run --example three_nodes`

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Instant;

use paxwal::node::net::{Auth, Secret};
use paxwal::node::{KvClient, KvMachine, Node, NodeConfig};
use paxwal::paxos::Role;
use paxwal::NodeId;

fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let auth = Auth::Secret(Arc::new(Secret::generate()));
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let peer_addrs: Vec<SocketAddr> = ids.iter().map(|_| free_addr()).collect::<Result<_, _>>()?;
    let client_addrs: Vec<SocketAddr> =
        ids.iter().map(|_| free_addr()).collect::<Result<_, _>>()?;
    let mut nodes = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let peers = ids
            .iter()
            .zip(&peer_addrs)
            .filter(|(p, _)| **p != id)
            .map(|(p, a)| (*p, *a))
            .collect();
        let cfg = NodeConfig::new(
            id,
            peer_addrs[i],
            client_addrs[i],
            peers,
            dir.path().join(format!("r{}", id.0)),
            auth.clone(),
        );
        nodes.push(Some(Node::start(cfg, KvMachine::new())?));
    }

    let mut client = KvClient::new(client_addrs.clone(), auth.clone());
    for i in 0..100u32 {
        client.put(format!("key{i}").as_bytes(), format!("value{i}").as_bytes())?;
    }
    assert_eq!(client.get(b"key42")?, Some(b"value42".to_vec()));
    assert!(client.cas(b"key1", Some(b"value1"), b"changed")?);
    println!("100 puts, a get and a compare-and-set through the cluster");

    // Stop the leader; the other two elect a new one and keep serving.
    let leader = nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.status().role == Role::Leader))
        .ok_or("no leader")?;
    let started = Instant::now();
    if let Some(n) = nodes[leader].take() {
        n.shutdown()?;
    }
    client.put(b"after", b"failover")?;
    println!(
        "replica {} stopped; the next write succeeded after {:?}",
        leader + 1,
        started.elapsed()
    );
    assert_eq!(client.get(b"key1")?, Some(b"changed".to_vec()));
    for n in nodes.iter().flatten() {
        let s = n.status();
        println!(
            "replica {}: {:?}, applied through slot {}",
            s.id.0, s.role, s.applied.0
        );
    }
    for n in nodes.into_iter().flatten() {
        n.shutdown()?;
    }
    Ok(())
}
