//! Command-line arguments of `p2pchat bench` and `p2pchat bench-splice`.

use anyhow::{bail, Result};

use crate::payload;

/// Largest room the fanout scenario makes (each member is a connection of the bench).
pub const MAX_MEMBERS: usize = 100_000;

/// The server a bench run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The p2pchat relay, spoken to with the real protocol.
    P2pchat,
    /// The `bench-splice` pure byte relay (pairs consecutive connections).
    Splice,
    /// No server: the bench connects to itself (the floor).
    Direct,
    /// Redis pub/sub (RESP2).
    Redis,
    /// NATS core pub/sub.
    Nats,
}

impl Target {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::P2pchat => "p2pchat",
            Self::Splice => "splice",
            Self::Direct => "direct",
            Self::Redis => "redis",
            Self::Nats => "nats",
        }
    }

    /// Whether one message can go to many receivers (a p2pchat room, a Redis channel, a NATS
    /// subject): the fanout scenario's targets.
    pub fn has_rooms(self) -> bool {
        matches!(self, Self::P2pchat | Self::Redis | Self::Nats)
    }
}

/// What protects the traffic between the bench and a p2pchat relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS to the relay and end-to-end encrypted message bodies: what the client does.
    TlsE2e,
    /// Plain TCP to the relay, end-to-end encrypted bodies (`--no-tls`).
    E2e,
    /// Plain TCP, bodies are the raw payload (`--plaintext`; every other target).
    Plaintext,
}

impl Security {
    /// The name used in reports: `tls+e2e`, `e2e` or `plaintext`.
    pub fn name(self) -> &'static str {
        match self {
            Self::TlsE2e => "tls+e2e",
            Self::E2e => "e2e",
            Self::Plaintext => "plaintext",
        }
    }

    /// Whether connections to the relay use TLS.
    pub fn tls(self) -> bool {
        self == Self::TlsE2e
    }

    /// Whether message bodies are end-to-end envelopes.
    pub fn e2e(self) -> bool {
        self != Self::Plaintext
    }
}

/// A load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One conversation, one direction, as fast as possible: messages/s and MB/s.
    Throughput,
    /// One conversation, ping-pong: round-trip percentiles.
    Latency,
    /// Many conversations at once, one direction each: aggregate messages/s.
    Pairs,
    /// `--pairs` conversations each sending with at most `--in-flight` unacknowledged
    /// (p2pchat with history, or Redis Streams): acknowledged messages/s and ack latency.
    Durable,
    /// Many idle logged-in clients (p2pchat only): server memory per connection.
    Connections,
    /// One sender, a room of `--members` receivers (p2pchat room, Redis channel, NATS
    /// subject): delivered messages/s and the time from send to the last member's receipt.
    Fanout,
    /// Every scenario the target supports, in the order above.
    All,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Throughput => "throughput",
            Self::Latency => "latency",
            Self::Pairs => "pairs",
            Self::Durable => "durable",
            Self::Connections => "connections",
            Self::Fanout => "fanout",
            Self::All => "all",
        }
    }
}

/// Load-test a relay (or Redis, NATS, the splice relay, or nothing at all) on this machine.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Every message payload is ASCII text of --size bytes carrying its \
    conversation and index; receivers verify that every message arrived exactly once and in \
    order. Scenarios: throughput (--messages, one direction), latency (--trips, ping-pong), \
    pairs (--pairs conversations each sending --per-pair messages one way, all at once), \
    durable (--pairs conversations sending --messages in all, at most --in-flight \
    unacknowledged, optionally at --rate; p2pchat or Redis Streams with XADD), \
    connections (--connections idle clients, then one message through --sample pairs), \
    fanout (one sender to rooms of each of --members receivers, about --deliveries deliveries \
    each, at most --window messages not yet received by every member).\n\n\
    Examples:\n  \
    p2pchat bench --port 8888 throughput latency\n  \
    p2pchat bench --target redis --port 6379 --server-pid $(pidof redis-server) --json all\n  \
    p2pchat bench --target direct pairs --pairs 100\n  \
    p2pchat bench --port 8888 durable --pairs 1000 --rate 50000\n  \
    p2pchat bench --port 8888 --server-pid PID connections --connections 10000\n  \
    p2pchat bench --target nats --port 4222 fanout --members 10,100"
)]
pub struct BenchArgs {
    /// Scenarios to run, in order (default: all).
    #[arg(value_enum, value_name = "SCENARIO")]
    pub scenarios: Vec<Scenario>,
    /// A scenario to run (may be repeated; adds to the positional list).
    #[arg(long = "scenario", value_enum, value_name = "SCENARIO")]
    pub scenario_flags: Vec<Scenario>,
    /// The server to load.
    #[arg(long, value_enum, default_value_t = Target::P2pchat)]
    pub target: Target,
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The server's port (required except for --target direct).
    #[arg(long)]
    pub port: Option<u16>,
    /// The server's process id, to report its memory (VmRSS) and CPU time.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Print one JSON object per scenario on stdout (the tables go to stderr).
    #[arg(long)]
    pub json: bool,
    /// p2pchat: plain TCP and no end-to-end layer (message bodies are the raw payload), for a
    /// relay started with --plaintext. Default: TLS to the relay (trusting whatever certificate
    /// it presents, pinned in a temporary known-hosts file) and end-to-end encrypted bodies.
    #[arg(long, conflicts_with = "no_tls")]
    pub plaintext: bool,
    /// p2pchat: plain TCP to the relay (started with --plaintext) but end-to-end encrypted
    /// bodies, to tell the cost of TLS from the cost of the envelopes.
    #[arg(long)]
    pub no_tls: bool,
    /// End-to-end mode: most messages a sender with several queued seals into one envelope
    /// (one relay frame), as the client batches; 1: one envelope per message. Fewer when the
    /// relay's message limit is smaller. The latency scenario always sends one per envelope.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub batch: usize,
    /// Payload bytes per message (at least 18).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub size: usize,
    /// throughput: messages to send; durable: messages in all, split over --pairs.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub messages: u64,
    /// latency: round trips.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub trips: u64,
    /// pairs, durable: conversations at once.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub pairs: usize,
    /// pairs: messages each conversation sends (all one way, first side to second).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub per_pair: u64,
    /// durable: unacknowledged messages allowed in all, split evenly over the conversations
    /// (at least 1 each).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub in_flight: u64,
    /// durable: messages/s to write in all, spread evenly over the conversations (0: as fast
    /// as acknowledgements allow).
    #[arg(long, default_value_t = 0, value_name = "MSGS_PER_S")]
    pub rate: u64,
    /// connections: idle clients to open (paired by the relay two by two).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub connections: usize,
    /// connections: pairs that must pass a message afterwards.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub sample: usize,
    /// connections: seconds to keep the clients idle (pinging) before the sample check.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub idle: u64,
    /// connections: spread client sockets over 127.0.0.1..127.0.0.N (default: one address
    /// per 10,000 connections).
    #[arg(long, value_name = "N")]
    pub source_ips: Option<u8>,
    /// fanout: room sizes (receivers besides the sender), one run each, in order.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 100, 1000], value_name = "R,..")]
    pub members: Vec<usize>,
    /// fanout: messages the sender may have sent that some member has not received yet. Keep
    /// it times the frame size well under the relay's 256 KiB queue per member: a member whose
    /// queue overflows is disconnected as too slow for the room.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub window: u64,
    /// fanout: deliveries (messages × members) per room size; each room size sends
    /// max(this / members, 100) messages.
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    pub deliveries: u64,
    /// Connections being set up at once when making many. Keep it under the server's listen
    /// backlog (128 for a Rust server bound the usual way): a SYN that overflows the backlog is
    /// dropped and retried a second later, which then dominates the connect time.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub concurrency: usize,
    /// Seconds a scenario may take (connections: plus --idle) before it is aborted.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
}

impl BenchArgs {
    /// How the bench protects its traffic (always plaintext for targets other than p2pchat).
    pub fn security(&self) -> Security {
        if self.target != Target::P2pchat || self.plaintext {
            Security::Plaintext
        } else if self.no_tls {
            Security::E2e
        } else {
            Security::TlsE2e
        }
    }

    /// The scenarios to run, `all` expanded for the target; an explicit scenario the target
    /// does not support is an error.
    pub fn plan(&self) -> Result<Vec<Scenario>> {
        let asked: Vec<Scenario> = self
            .scenarios
            .iter()
            .chain(&self.scenario_flags)
            .copied()
            .collect();
        let asked = if asked.is_empty() {
            vec![Scenario::All]
        } else {
            asked
        };
        let mut plan = Vec::new();
        for scenario in asked {
            if scenario == Scenario::All {
                plan.extend([Scenario::Throughput, Scenario::Latency, Scenario::Pairs]);
                if matches!(self.target, Target::P2pchat | Target::Redis) {
                    plan.push(Scenario::Durable);
                }
                if self.target == Target::P2pchat {
                    plan.push(Scenario::Connections);
                }
                if self.target.has_rooms() {
                    plan.push(Scenario::Fanout);
                }
            } else if scenario == Scenario::Connections && self.target != Target::P2pchat {
                bail!(
                    "the connections scenario is not supported for --target {} (p2pchat only)",
                    self.target.name()
                );
            } else if scenario == Scenario::Durable
                && !matches!(self.target, Target::P2pchat | Target::Redis)
            {
                bail!(
                    "the durable scenario is not supported for --target {} (p2pchat or redis)",
                    self.target.name()
                );
            } else if scenario == Scenario::Fanout && !self.target.has_rooms() {
                bail!(
                    "the fanout scenario is not supported for --target {} (p2pchat, redis or nats)",
                    self.target.name()
                );
            } else {
                plan.push(scenario);
            }
        }
        Ok(plan)
    }

    /// Checks values clap cannot.
    pub fn validate(&self) -> Result<()> {
        if self.port.is_none() && self.target != Target::Direct {
            bail!("--port is required for --target {}", self.target.name());
        }
        if self.size < payload::HEADER_LEN {
            bail!("--size must be at least {} bytes", payload::HEADER_LEN);
        }
        if self.size > 16 << 20 {
            bail!("--size is at most 16 MiB");
        }
        let max = payload::MAX_CONVERSATIONS as usize;
        if self.pairs > max || self.connections / 2 > max {
            bail!("at most {max} conversations");
        }
        if self.source_ips == Some(0) {
            bail!("--source-ips must be at least 1");
        }
        if self.in_flight == 0 {
            bail!("--in-flight must be at least 1");
        }
        if self.pairs == 0 {
            bail!("--pairs must be at least 1");
        }
        if self.batch == 0 || self.batch > usize::from(u16::MAX) {
            bail!("--batch must be between 1 and {}", u16::MAX);
        }
        if self.members.is_empty() || self.members.iter().any(|&r| r == 0 || r > MAX_MEMBERS) {
            bail!("--members must list room sizes between 1 and {MAX_MEMBERS}");
        }
        if self.window == 0 {
            bail!("--window must be at least 1");
        }
        if self.deliveries == 0 {
            bail!("--deliveries must be at least 1");
        }
        if self.timeout == 0 {
            bail!("--timeout must be at least 1 second");
        }
        Ok(())
    }
}
