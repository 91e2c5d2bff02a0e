//! What every `wardenctl` command shares: the global options and the connection they
//! describe (`Cli`), the output format, how a command fails and the exit code that picks
//! (the SPEC: 0 success, 1 refused (validation, NACK, not found), 2 usage, 3 the control
//! plane cannot be reached, 4 a preview's gate closed), reading a policy file and naming the author. A leaf: commands
//! import it, it imports no command.

use clap::ValueEnum;
use tonic::transport::Channel;
use warden_proto::MAX_MESSAGE_BYTES;
use warden_proto::v1::admin_service_client::AdminServiceClient;

/// The global options: where the control plane is, how to prove who we are, what to print.
#[derive(Debug, clap::Args)]
pub struct Cli {
    /// Control plane URL; several, comma-separated, are tried in turn until one answers
    /// (replicas on one database).
    #[arg(long, global = true, env = "WARDEN_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// Admin bearer token.
    #[arg(long, global = true, env = "WARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) for an `https://` --server.
    #[arg(long, global = true, env = "WARDEN_CA_FILE")]
    pub ca_file: Option<String>,
    /// Output format: table (the default), json or yaml. For `fallback export`: the file
    /// to write.
    #[arg(short = 'o', long = "output", global = true, value_name = "FORMAT")]
    pub output_arg: Option<String>,
    /// `--output` as a format (`Cli::read_format`).
    #[arg(skip)]
    pub output: Format,
}

impl Cli {
    /// Reads `--output` as a format: one flag is a format for every command but the one
    /// that writes a file, so clap cannot check it alone.
    pub fn read_format(&mut self) -> Result<(), Failure> {
        self.output = match self.output_arg.as_deref() {
            None => Format::Table,
            Some(s) => Format::from_str(s, true).map_err(|_| {
                Failure::Usage(format!("invalid value '{s}' for '--output <FORMAT>': table, json or yaml"))
            })?,
        };
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// How a command failed, which picks the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Refused: validation, NACK, not found. Exit 1.
    Refused(String),
    /// The command line itself is wrong in a way clap cannot see. Exit 2.
    Usage(String),
    /// The control plane cannot be reached, or cannot reach its store. Exit 3.
    Unreachable(String),
    /// A preview's gate closed: too many newly refused requests, or none to judge. Exit 4.
    Gated(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::Gated(_) => 4,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Refused(m) | Failure::Usage(m) | Failure::Unreachable(m) | Failure::Gated(m) => m,
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => match s.message() {
                m if m.starts_with("store unavailable: ") => Failure::Unreachable(format!(
                    "the control plane cannot reach its database: {}",
                    &m["store unavailable: ".len()..]
                )),
                m => Failure::Unreachable(format!("cannot reach the control plane: {m}")),
            },
            _ => Failure::Refused(s.message().to_owned()),
        }
    }
}

pub type Outcome = Result<(), Failure>;

pub type Admin = AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

/// Adds the admin token to every call.
#[derive(Clone)]
pub struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

impl Cli {
    /// Connects to the control plane: the first of `--server`'s URLs that answers.
    pub async fn admin(&self) -> Result<Admin, Failure> {
        let token = match &self.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| Failure::Usage("--token has characters a header cannot carry".into()))?,
            ),
            None => None,
        };
        let mut unreachable = Vec::new();
        for url in self.server.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            match self.channel(url).await? {
                Ok(channel) => {
                    return Ok(AdminServiceClient::with_interceptor(channel, Auth(token))
                        .max_decoding_message_size(MAX_MESSAGE_BYTES));
                }
                Err(e) => unreachable.push(format!("{url}: {e}")),
            }
        }
        match unreachable.len() {
            0 => Err(Failure::Usage("--server names no URL".into())),
            1 => Err(Failure::Unreachable(format!("cannot reach the control plane at {}", unreachable[0]))),
            _ => Err(Failure::Unreachable(format!("cannot reach any control plane: {}", unreachable.join("; ")))),
        }
    }

    /// A channel to one URL: a usage error when the URL or CA is bad, else whether it connected.
    async fn channel(&self, url: &str) -> Result<Result<Channel, tonic::transport::Error>, Failure> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| Failure::Usage(format!("--server {url}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(30));
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| Failure::Usage(format!("--ca-file {ca}: {e}")))?;
            let tls =
                tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).map_err(|e| Failure::Usage(format!("--ca-file {ca}: {e}")))?;
        }
        Ok(endpoint.connect().await)
    }
}

/// Reads a policy file (`-` = stdin).
pub fn read_file(path: &str) -> Result<String, Failure> {
    if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Failure::Refused(format!("stdin: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| Failure::Refused(format!("{path}: {e}")))
}

/// Who is applying: `--author`, else `$USER@host`.
pub fn author(explicit: Option<&str>) -> String {
    if let Some(a) = explicit {
        return a.to_owned();
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    if host.is_empty() { user } else { format!("{user}@{host}") }
}
