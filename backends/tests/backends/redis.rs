//! The Redis subscriber and publisher against a real `redis-server`, killed
//! and restarted.

use std::time::Duration;

use backends::{Publisher, RedisConfig, Subscriber, SubscriberEvent};
use testkit::{RedisServer, unique_name};
use tokio::sync::mpsc;

/// How long an event may take to arrive.
const PATIENCE: Duration = Duration::from_secs(10);

fn config(url: String) -> RedisConfig {
    RedisConfig::new(url).with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn subscriber(
    config: &RedisConfig,
) -> (Subscriber, mpsc::UnboundedReceiver<SubscriberEvent>) {
    let (events, receiver) = mpsc::unbounded_channel();
    let subscriber = Subscriber::connect(config, move |event| {
        let _ = events.send(event);
    })
    .await
    .expect("connect the subscriber");
    (subscriber, receiver)
}

async fn next(events: &mut mpsc::UnboundedReceiver<SubscriberEvent>) -> SubscriberEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event in time")
        .expect("the subscriber is alive")
}

fn message(channel: &str, payload: &str) -> SubscriberEvent {
    SubscriberEvent::Message {
        channel: channel.to_owned(),
        payload: payload.as_bytes().to_vec(),
    }
}

/// Publishes `payload` until Redis takes it (the publisher may still be
/// reconnecting) and checks that it reached one subscriber.
async fn publish_until_taken(publisher: &Publisher, channel: &str, payload: &str) {
    for _ in 0..200 {
        match publisher.publish(channel, payload.as_bytes()).await {
            Ok(receivers) => {
                assert_eq!(receivers, 1, "{channel} has no subscriber");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("Redis never took {payload}");
}

#[tokio::test]
async fn messages_reach_subscribed_channels_only() {
    let config = config(testkit::redis_url());
    let (subscriber, mut events) = subscriber(&config).await;
    let publisher = Publisher::connect(&config).await.expect("publisher");
    let [held, other] = [unique_name("held"), unique_name("other")];
    subscriber.subscribe(&held).await;
    subscriber.subscribe(&held).await;
    assert_eq!(
        publisher
            .publish(&other, b"unheard")
            .await
            .expect("publish"),
        0
    );
    assert_eq!(publisher.publish(&held, b"one").await.expect("publish"), 1);
    assert_eq!(next(&mut events).await, message(&held, "one"));
    subscriber.unsubscribe(&held).await;
    subscriber.unsubscribe(&other).await;
    assert_eq!(publisher.publish(&held, b"gone").await.expect("publish"), 0);
}

#[tokio::test]
async fn a_restart_is_reported_then_every_channel_is_back_before_resubscribed() {
    let mut server = RedisServer::start();
    let config = config(server.url());
    let (subscriber, mut events) = subscriber(&config).await;
    let publisher = Publisher::connect(&config).await.expect("publisher");
    let channels: Vec<String> = (0..3).map(|n| unique_name(&format!("kept{n}"))).collect();
    for channel in &channels {
        subscriber.subscribe(channel).await;
    }
    let dropped = unique_name("dropped");
    subscriber.subscribe(&dropped).await;

    server.kill();
    assert_eq!(next(&mut events).await, SubscriberEvent::Disconnected);
    // Made while Redis is away: remembered, applied on reconnection.
    let late = unique_name("late");
    subscriber.subscribe(&late).await;
    subscriber.unsubscribe(&dropped).await;
    assert!(
        publisher.publish(&late, b"lost").await.is_err(),
        "a publish while Redis is down fails"
    );
    server.restart();
    loop {
        match next(&mut events).await {
            SubscriberEvent::Resubscribed => break,
            SubscriberEvent::Disconnected => {}
            other => panic!("unexpected {other:?} before Resubscribed"),
        }
    }
    // Every channel is held again the moment Resubscribed is reported.
    for channel in channels.iter().chain([&late]) {
        publish_until_taken(&publisher, channel, channel).await;
        // A subscribe made while down asked for a pass of its own: it may
        // report `Resubscribed` once more.
        let heard = loop {
            match next(&mut events).await {
                SubscriberEvent::Resubscribed => {}
                event => break event,
            }
        };
        assert_eq!(heard, message(channel, channel));
    }
    assert_eq!(
        publisher
            .publish(&dropped, b"released")
            .await
            .expect("publish"),
        0
    );
}
