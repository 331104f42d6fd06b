//! The raw tokio-tungstenite baseline for the ping benchmark (`benches/ws.py`): one
//! WebSocket, N pings one after another on a current-thread runtime like a volley
//! worker's; prints `PING p50=<ms> p95=<ms>`.
//!   cargo run --release --example ws_raw_ping -- ws://127.0.0.1:18090/stream/ws 2000

use futures_util::{SinkExt, StreamExt};
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:18090/stream/ws".into());
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
        let mut rtts = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let payload = i.to_be_bytes().to_vec();
            let started = Instant::now();
            ws.send(Message::Ping(payload.clone().into())).await?;
            while let Some(m) = ws.next().await {
                if let Message::Pong(p) = m?
                    && p.as_ref() == payload.as_slice()
                {
                    break;
                }
            }
            rtts.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        rtts.sort_by(f64::total_cmp);
        let at = |q: f64| rtts[((rtts.len() as f64 - 1.0) * q).round() as usize];
        println!("PING p50={:.3} p95={:.3}", at(0.5), at(0.95));
        ws.close(None).await?;
        Ok(())
    })
}
