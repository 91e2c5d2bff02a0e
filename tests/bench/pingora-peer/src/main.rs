//! A minimal Pingora proxy for the data-plane benchmark: one thread, every request
//! forwarded to one upstream over HTTP/1.1 with one header set, HTTP/1.1 and h2c (prior
//! knowledge) on one port, no access log. The Rust peer Warden is measured against.
//!
//!   pingora-peer LISTEN UPSTREAM      # e.g. 127.0.0.1:8080 127.0.0.1:9000

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Forward {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream.as_str(), false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        request.insert_header("x-proxy", "pingora")
    }
}

/// Pingora answers SIGTERM with a graceful shutdown that waits on idle keep-alive
/// connections; the benchmark stops its peers with SIGTERM and wants them gone at once.
/// (Pingora's own handler, installed later, chains to this one.)
extern "C" fn exit_now(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

fn main() {
    // SAFETY: installing a handler that only calls _exit.
    unsafe { libc::signal(libc::SIGTERM, exit_now as *const () as libc::sighandler_t) };
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: pingora-peer LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Forward { upstream });
    if let Some(app) = proxy.app_logic_mut() {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        app.server_options = Some(options);
    }
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
