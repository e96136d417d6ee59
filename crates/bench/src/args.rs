//! The command line: the same flags as the `etcd-client` baseline harness
//! (`../shared/bench/peer-etcd-client`), plus `--stack`, `--user`,
//! `--count-allocs` and `--prometheus`.

use std::time::Duration;

/// The workload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// Puts of random keys from the keyspace.
    Put,
    /// Linearizable single-key gets of random (populated) keys.
    Range,
    /// Txns with no compares and one put in the success branch.
    Txn,
    /// One prefix watcher; the clients put under its prefix.
    Watch,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Range => "range",
            Op::Txn => "txn",
            Op::Watch => "watch",
        }
    }
}

/// Which services sit between the harness and the wire.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StackKind {
    /// `etcd_tower_core::Transport` alone.
    Bare,
    /// Some or all of the layers over the transport.
    Layered(Layers),
}

/// The layers of a layered stack. `--stack full` is all of them (auth only
/// with `--user`); `--stack metrics,retry` names some, to tell what each
/// costs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layers {
    pub metrics: bool,
    pub retry: bool,
    pub timeout: bool,
    pub auth: bool,
    pub namespace: bool,
}

impl Layers {
    const ALL: Layers = Layers {
        metrics: true,
        retry: true,
        timeout: true,
        auth: true,
        namespace: true,
    };

    fn parse(list: &str) -> Result<Layers, String> {
        let mut layers = Layers {
            metrics: false,
            retry: false,
            timeout: false,
            auth: false,
            namespace: false,
        };
        for name in list.split(',') {
            match name {
                "metrics" => layers.metrics = true,
                "retry" => layers.retry = true,
                "timeout" => layers.timeout = true,
                "auth" => layers.auth = true,
                "namespace" => layers.namespace = true,
                _ => return Err(format!("unknown layer {name:?} in --stack")),
            }
        }
        Ok(layers)
    }
}

#[derive(Debug)]
pub struct Args {
    pub endpoints: Vec<String>,
    pub op: Op,
    pub clients: usize,
    pub conns: usize,
    pub total: usize,
    pub key_size: usize,
    pub val_size: usize,
    pub keyspace: usize,
    pub warmup: usize,
    pub threads: usize,
    pub prefix: String,
    pub no_populate: bool,
    pub stack: StackKind,
    /// `(user, password)` for servers with auth enabled.
    pub user: Option<(String, String)>,
    pub count_allocs: bool,
    /// Install a Prometheus recorder, so the metrics layer really records.
    pub prometheus: bool,
    /// An in-process stand-in for etcd instead of the transport.
    pub mock: bool,
    /// Per-attempt deadline of the timeout layer (full stack).
    pub timeout: Duration,
}

pub const USAGE: &str = "usage: etcd-tower-bench --endpoints HOST:PORT[,HOST:PORT..] \
--op put|range|txn|watch [--clients C=1] [--conns M=1] [--total N=10000] \
[--key-size 32] [--val-size 256] [--keyspace K=10000] [--warmup W=200] \
[--threads T=0 (tokio default)] [--prefix bench/] [--no-populate] \
[--stack bare|full|LAYER,..] [--user NAME:PASSWORD] [--count-allocs] [--prometheus] \
[--timeout-ms 5000] [--mock]";

pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Args, String> {
    let mut a = Args {
        endpoints: vec!["127.0.0.1:2379".into()],
        op: Op::Put,
        clients: 1,
        conns: 1,
        total: 10_000,
        key_size: 32,
        val_size: 256,
        keyspace: 10_000,
        warmup: 200,
        threads: 0,
        prefix: "bench/".into(),
        no_populate: false,
        stack: StackKind::Bare,
        user: None,
        count_allocs: false,
        prometheus: false,
        mock: false,
        timeout: Duration::from_secs(5),
    };
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            "--no-populate" => {
                a.no_populate = true;
                continue;
            }
            "--count-allocs" => {
                a.count_allocs = true;
                continue;
            }
            "--prometheus" => {
                a.prometheus = true;
                continue;
            }
            "--mock" => {
                a.mock = true;
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("missing value for {name}"))?,
        };
        let number = || -> Result<usize, String> {
            value.parse::<usize>().map_err(|e| format!("{name}: {e}"))
        };
        match name.as_str() {
            "--endpoints" => a.endpoints = value.split(',').map(str::to_owned).collect(),
            "--op" => {
                a.op = match value.as_str() {
                    "put" => Op::Put,
                    "range" => Op::Range,
                    "txn" => Op::Txn,
                    "watch" => Op::Watch,
                    _ => return Err(format!("unknown --op {value}")),
                }
            }
            "--stack" => {
                a.stack = match value.as_str() {
                    "bare" => StackKind::Bare,
                    "full" => StackKind::Layered(Layers::ALL),
                    list => StackKind::Layered(Layers::parse(list).map_err(|e| {
                        format!("{e}: --stack is bare, full, or a list of metrics,retry,timeout,auth,namespace")
                    })?),
                }
            }
            "--user" => {
                let (user, password) = value.split_once(':').ok_or("--user wants NAME:PASSWORD")?;
                a.user = Some((user.to_owned(), password.to_owned()));
            }
            "--clients" => a.clients = number()?,
            "--conns" => a.conns = number()?,
            "--total" => a.total = number()?,
            "--key-size" => a.key_size = number()?,
            "--val-size" => a.val_size = number()?,
            "--keyspace" => a.keyspace = number()?,
            "--warmup" => a.warmup = number()?,
            "--threads" => a.threads = number()?,
            "--timeout-ms" => a.timeout = Duration::from_millis(number()? as u64),
            "--prefix" => a.prefix = value,
            _ => return Err(format!("unknown flag {name}\n{USAGE}")),
        }
    }
    if a.clients == 0 || a.conns == 0 || a.total == 0 || a.keyspace == 0 {
        return Err("--clients, --conns, --total, --keyspace must be > 0".into());
    }
    if a.mock && a.op == Op::Watch {
        return Err("--mock answers put, range and txn, not watch".into());
    }
    if a.op == Op::Watch && a.val_size < 8 {
        return Err("--op watch needs --val-size >= 8 (send time is stored in the value)".into());
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn the_baselines_flags_parse() {
        let a = p(
            "--endpoints 127.0.0.1:1,127.0.0.1:2 --op txn --clients 16 --conns=8 \
                   --total 100 --key-size 32 --val-size 256 --keyspace 10 --no-populate",
        )
        .unwrap();
        assert_eq!(a.endpoints.len(), 2);
        assert_eq!((a.op, a.clients, a.conns, a.total), (Op::Txn, 16, 8, 100));
        assert!(a.no_populate);
        assert_eq!(a.stack, StackKind::Bare);
    }

    #[test]
    fn our_flags_parse() {
        let a = p("--stack full --user root:pw:x --count-allocs").unwrap();
        assert_eq!(a.stack, StackKind::Layered(Layers::ALL));
        assert_eq!(a.user, Some(("root".into(), "pw:x".into())));
        assert!(a.count_allocs);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(p("--op nope").is_err());
        assert!(p("--clients 0").is_err());
        assert!(p("--stack thin").is_err());
        assert!(p("--stack metrics,thin").is_err());
        let a = p("--stack metrics,namespace").unwrap();
        let StackKind::Layered(layers) = a.stack else {
            panic!("{a:?}")
        };
        assert!(layers.metrics && layers.namespace && !layers.retry);
        assert!(p("--user nocolon").is_err());
        assert!(p("--op watch --val-size 4").is_err());
        assert!(p("--total").is_err());
    }
}
