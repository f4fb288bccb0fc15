//! testkit against the real servers: start, kill, restart on the same port, and the official MongoDB driver.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use testkit::{MongoServer, RedisServer, Topology, unique_name};

/// Sends one inline command and returns the first reply line, e.g. `+OK` or `$5`.
fn redis_command(port: u16, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .expect("send");
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).expect("reply");
    reply.trim_end().to_owned()
}

#[test]
fn redis_restarts_on_the_same_port_empty() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert!(redis.log_path().exists());
    assert_eq!(redis_command(port, "SET greeting hello"), "+OK");
    assert_eq!(redis_command(port, "EXISTS greeting"), ":1");

    redis.kill();
    assert!(!redis.is_running());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    redis.kill();

    redis.restart();
    assert!(redis.is_running());
    assert_eq!(redis.port(), port);
    assert_eq!(redis_command(port, "PING"), "+PONG");
    assert_eq!(
        redis_command(port, "EXISTS greeting"),
        ":0",
        "no persistence"
    );
}

#[test]
fn shared_redis_is_started_once() {
    // Under `cargo xtask test` this is the run's server from $REDIS_URL.
    let url = testkit::redis_url();
    assert_eq!(testkit::redis_url(), url);
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port");
    assert_eq!(redis_command(port, "PING"), "+PONG");
}

/// Shared servers live in statics that are never dropped: the watchdog must
/// kill them when the test process exits. This test runs itself as a child
/// process (marked by an env var) that starts the shared Redis and exits.
#[test]
fn shared_servers_die_with_the_test_process() {
    const CHILD: &str = "TESTKIT_EXIT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        report_shared_url_to_parent();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "shared_servers_die_with_the_test_process",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env_remove("REDIS_URL")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let port: u16 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("SHARED_URL redis://127.0.0.1:"))
        .and_then(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child reported no URL: {stdout}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the shared server outlived its process"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// The child's only channel to its parent test is its stdout.
#[allow(clippy::print_stdout)]
fn report_shared_url_to_parent() {
    println!("SHARED_URL {}", testkit::redis_url());
}

#[test]
fn dropping_a_server_kills_it_and_removes_its_dir() {
    let redis = RedisServer::start();
    let (port, log) = (redis.port(), redis.log_path().to_owned());
    drop(redis);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!log.exists());
}

async fn client(uri: &str) -> Client {
    let mut options = ClientOptions::parse(uri).await.expect("a valid uri");
    options.server_selection_timeout = Some(std::time::Duration::from_secs(10));
    Client::with_options(options).expect("a client")
}

fn items(client: &Client) -> Collection<Document> {
    client.database(&unique_name("testkit")).collection("items")
}

#[tokio::test]
async fn mongo_data_survives_a_restart_on_the_same_port() {
    let mut mongo = MongoServer::start(Topology::ReplicaSet);
    let port = mongo.port();
    assert!(mongo.uri().contains(&format!("127.0.0.1:{port}")));
    let client = client(&mongo.uri()).await;
    let items = items(&client);
    items
        .insert_one(doc! { "_id": "sword", "amount": 1 })
        .await
        .expect("insert");
    // A guarded `$inc`: the filter rejects a decrement the balance cannot pay.
    let guarded = items
        .update_one(
            doc! { "_id": "sword", "amount": { "$gte": 2 } },
            doc! { "$inc": { "amount": -2 } },
        )
        .await
        .expect("update");
    assert_eq!(guarded.matched_count, 0);

    mongo.kill();
    assert!(!mongo.is_running());
    mongo.restart();
    assert!(mongo.is_running());
    assert_eq!(mongo.port(), port);

    // The same client reconnects by itself, as a long-lived store would.
    let found = items
        .find_one(doc! { "_id": "sword" })
        .await
        .expect("find after restart")
        .expect("the document survived");
    assert_eq!(found.get_i32("amount"), Ok(1));
}

#[tokio::test]
async fn replica_set_commits_transactions() {
    let mongo = MongoServer::start(Topology::ReplicaSet);
    let client = client(&mongo.uri()).await;
    let items = items(&client);
    // Collections must exist before a transaction writes to them.
    items
        .insert_one(doc! { "_id": "seed" })
        .await
        .expect("seed");
    let mut session = client.start_session().await.expect("a session");
    session.start_transaction().await.expect("start");
    items
        .insert_one(doc! { "_id": "in-transaction" })
        .session(&mut session)
        .await
        .expect("write in the transaction");
    session.commit_transaction().await.expect("commit");
    assert_eq!(items.count_documents(doc! {}).await.expect("count"), 2);
}

/// The driver does not refuse transactions on a standalone deployment (and
/// secantusd-rs accepts them), so code that needs to know must read the
/// `hello` reply: a replica set member names its set, a standalone does not.
#[tokio::test]
async fn topologies_advertise_themselves_in_hello() {
    for topology in [Topology::ReplicaSet, Topology::Standalone] {
        let mongo = MongoServer::start(topology);
        assert_eq!(mongo.topology(), topology);
        let hello = client(&mongo.uri())
            .await
            .database("admin")
            .run_command(doc! { "hello": 1 })
            .await
            .expect("hello");
        assert_eq!(
            hello.contains_key("setName"),
            topology == Topology::ReplicaSet,
            "{topology:?}: {hello}"
        );
    }
}

/// Acknowledged writes survive a SIGKILL only because testkit starts
/// secantusd-rs with `--sync-on-commit`; this guards that choice.
#[tokio::test]
async fn acknowledged_writes_survive_a_kill() {
    let mut mongo = MongoServer::start(Topology::ReplicaSet);
    let client = client(&mongo.uri()).await;
    let items = items(&client);
    items
        .insert_one(doc! { "_id": "gold", "amount": 0 })
        .await
        .expect("insert");
    for _ in 0..100 {
        items
            .update_one(doc! { "_id": "gold" }, doc! { "$inc": { "amount": 1 } })
            .await
            .expect("inc");
    }
    mongo.kill();
    mongo.restart();
    let gold = items
        .find_one(doc! { "_id": "gold" })
        .await
        .expect("find")
        .expect("the document");
    assert_eq!(gold.get_i32("amount"), Ok(100));
}

#[test]
fn shared_mongo_uris_come_from_the_environment_or_one_server_each() {
    let replica_set = testkit::mongodb_uri();
    let standalone = testkit::mongodb_standalone_uri();
    assert_eq!(testkit::mongodb_uri(), replica_set);
    assert_ne!(replica_set, standalone);
}
