//! The methods and properties of `WebSocket` (`ws.send`, `ws.recv`, `ws.ping`,
//! `ws.close`, `ws.open`, ...): thin wrappers over `ws.rs`, which holds the socket and
//! records its samples.

use super::ws::{WebSocket, close_impl, ping_impl, recv_impl, send_impl};
use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, NativeCallContext};

/// Methods and properties of `WebSocket`.
#[export_module]
pub mod socket_api {
    use super::*;

    /// Sends a message: a string as text, a blob as binary, a map or array as JSON
    /// text. Returns false when the connection failed while sending (counted in
    /// `ws_failed`); sending on a socket that is not open is an error.
    /// ```rhai
    /// ws.send(#{ type: "subscribe", topic: "prices" });
    /// ```
    #[rhai_fn(name = "send", return_raw)]
    pub fn send(ctx: NativeCallContext, ws: &mut WebSocket, message: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        send_impl(&ctx, ws, message)
    }

    /// The next message (a string, or a blob for binary), or `()` when none came within
    /// `timeout` or the connection ended (then `ws.open` is false).
    /// ```rhai
    /// let m = ws.recv("2s");
    /// if m != () { let event = parse_json(m); }
    /// ```
    #[rhai_fn(name = "recv", return_raw)]
    pub fn recv(ctx: NativeCallContext, ws: &mut WebSocket, timeout: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        recv_impl(&ctx, ws, Some(timeout))
    }

    /// The next message, waiting at most the socket's default (its `timeout`, at most
    /// 10 s).
    /// ```rhai
    /// let m = ws.recv();
    /// ```
    #[rhai_fn(name = "recv", return_raw)]
    pub fn recv_default(ctx: NativeCallContext, ws: &mut WebSocket) -> Result<Dynamic, Box<EvalAltResult>> {
        recv_impl(&ctx, ws, None)
    }

    /// Sends a ping and waits for the pong: the round trip in ms (also `ws_ping`), or
    /// `()` on timeout (counted as a `timeout` failure). Messages arriving meanwhile are
    /// kept for `recv`.
    /// ```rhai
    /// let rtt = ws.ping();
    /// ```
    #[rhai_fn(name = "ping", return_raw)]
    pub fn ping(ctx: NativeCallContext, ws: &mut WebSocket) -> Result<Dynamic, Box<EvalAltResult>> {
        ping_impl(&ctx, ws, None)
    }

    /// Sends a ping, waiting at most `timeout` for the pong.
    /// ```rhai
    /// let rtt = ws.ping("500ms");
    /// ```
    #[rhai_fn(name = "ping", return_raw)]
    pub fn ping_within(
        ctx: NativeCallContext,
        ws: &mut WebSocket,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        ping_impl(&ctx, ws, Some(timeout))
    }

    /// Closes the socket with code 1000: sends the close frame and waits (at most 5 s)
    /// for the server's; messages that arrive meanwhile are counted as received.
    /// Closing a closed socket does nothing.
    /// ```rhai
    /// ws.close();
    /// ```
    #[rhai_fn(name = "close", return_raw)]
    pub fn close(ctx: NativeCallContext, ws: &mut WebSocket) -> Result<(), Box<EvalAltResult>> {
        close_impl(&ctx, ws, 1000)
    }

    /// Closes the socket with a code: 1000, or an application code from 3000 to 4999.
    /// ```rhai
    /// ws.close(4000);
    /// ```
    #[rhai_fn(name = "close", return_raw)]
    pub fn close_with(ctx: NativeCallContext, ws: &mut WebSocket, code: i64) -> Result<(), Box<EvalAltResult>> {
        close_impl(&ctx, ws, code)
    }

    /// Whether the socket is open.
    /// ```rhai
    /// while ws.open { let m = ws.recv("1s"); }
    /// ```
    #[rhai_fn(get = "open", pure)]
    pub fn open(ws: &mut WebSocket) -> bool {
        ws.0.state().open
    }

    /// The handshake's status: 101 when it opened, the server's status when it refused
    /// the upgrade, 0 when no answer came.
    /// ```rhai
    /// check(ws, "upgraded", ws.status == 101);
    /// ```
    #[rhai_fn(get = "status", pure)]
    pub fn status(ws: &mut WebSocket) -> i64 {
        ws.0.state().status
    }

    /// Why the socket failed or the server ended it (`refused`, `status 403`, `reset`,
    /// `closed 1011`, ...), `""` if it did not.
    /// ```rhai
    /// if !ws.open { print(`lost: ${ws.error}`); }
    /// ```
    #[rhai_fn(get = "error", pure)]
    pub fn error(ws: &mut WebSocket) -> String {
        ws.0.state().error.clone()
    }

    /// The failure in full, `""` if none.
    /// ```rhai
    /// print(ws.error_message);
    /// ```
    #[rhai_fn(get = "error_message", pure)]
    pub fn error_message(ws: &mut WebSocket) -> String {
        ws.0.state().error_message.clone()
    }

    /// The close code: the server's when it closed, the script's after `close()`, 0
    /// otherwise.
    /// ```rhai
    /// if ws.close_code == 1011 { print("server error"); }
    /// ```
    #[rhai_fn(get = "close_code", pure)]
    pub fn close_code(ws: &mut WebSocket) -> i64 {
        ws.0.state().close_code
    }

    /// The subprotocol the server chose, `""` if none.
    /// ```rhai
    /// print(ws.protocol);
    /// ```
    #[rhai_fn(get = "protocol", pure)]
    pub fn protocol(ws: &mut WebSocket) -> String {
        ws.0.state().protocol.clone()
    }

    /// The URL the socket was opened with.
    /// ```rhai
    /// print(ws.url);
    /// ```
    #[rhai_fn(get = "url", pure)]
    pub fn url(ws: &mut WebSocket) -> String {
        ws.0.url.clone()
    }
}
