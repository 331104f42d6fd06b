//! The raw lapin baseline for the AMQP benchmark (`benches/amqp.py`): publishes N
//! messages of 200 bytes with publisher confirms pipelined `WINDOW` deep on one channel,
//! on a current-thread runtime like a volley worker's, and prints `RATE <msgs/s>`.
//!   cargo run --release --example amqp_raw -- 50000 100

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::collections::VecDeque;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50_000);
    let window: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        let queue = format!("volley-bench-raw-{}", std::process::id());
        ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let body = vec![b'x'; 200];
        let started = Instant::now();
        let mut inflight = VecDeque::with_capacity(window);
        let mut acked = 0usize;
        for _ in 0..n {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await?;
            inflight.push_back(confirm);
            while inflight.len() >= window {
                if let Some(c) = inflight.pop_front() {
                    acked += usize::from(c.await?.is_ack());
                }
            }
        }
        while let Some(c) = inflight.pop_front() {
            acked += usize::from(c.await?.is_ack());
        }
        let secs = started.elapsed().as_secs_f64();
        println!("RATE {:.0} ({acked} acked in {secs:.2}s)", acked as f64 / secs);
        ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
        conn.close(200, "done".into()).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
