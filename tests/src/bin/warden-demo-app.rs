//! `warden-demo-app [--listen ADDR] [--name NAME]`: the quick start's app. Answers every
//! request with JSON describing what it received.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut name = "demo-app".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--name" => name = args.next().unwrap_or(name),
            _ => {
                eprintln!("usage: warden-demo-app [--listen ADDR] [--name NAME]");
                std::process::exit(2);
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("warden-demo-app listening app={}", listener.local_addr()?);
    // Nothing is kept: the app runs as long as whoever started it wants.
    warden_e2e::app::serve(listener, name, None).await;
    Ok(())
}
