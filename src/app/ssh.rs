//! Where the person sits when the screen runs over SSH: the SSH client's address
//! (from `SSH_CONNECTION`), the connected trusted peer that is that person's machine
//! (the one marked `speakers = true` in `peers.toml`, else the one connected from the
//! SSH client's address), and — when there is none — the exact commands that make
//! one.
//!
//! Plain functions over the environment's text and the peers' state; never touches
//! the network or the terminal.

use std::net::{IpAddr, SocketAddr};

use crate::net::PeerStatus;

/// The SSH session this process runs in, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The SSH client's address (`None` when only `SSH_TTY` says it is a session).
    pub client: Option<IpAddr>,
}

/// The SSH session from the environment: `SSH_CONNECTION` ("client port server
/// port"), else `SSH_CLIENT`, else just `SSH_TTY`.
pub fn session() -> Option<Session> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    session_from(
        var("SSH_CONNECTION").as_deref(),
        var("SSH_CLIENT").as_deref(),
        var("SSH_TTY").is_some(),
    )
}

/// [`session`] from the variables' values.
pub fn session_from(connection: Option<&str>, client: Option<&str>, tty: bool) -> Option<Session> {
    let first = |v: &str| {
        v.split_whitespace()
            .next()
            .and_then(|a| a.parse::<IpAddr>().ok())
    };
    match (connection.or(client), tty) {
        (Some(v), _) => Some(Session {
            client: first(v).map(canonical),
        }),
        (None, true) => Some(Session { client: None }),
        (None, false) => None,
    }
}

/// An IPv4 address seen through an IPv6 socket as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why a peer was taken as the person's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Marked `speakers = true` in `peers.toml`.
    Marked,
    /// Connected from the SSH client's address.
    SshClient,
}

impl Why {
    /// Words for the status line.
    pub fn words(self) -> &'static str {
        match self {
            Why::Marked => "your speakers",
            Why::SshClient => "your SSH client",
        }
    }
}

/// The person's machine among `peers`: a connected one marked as the speakers, else
/// the connected one whose connection comes from the SSH client's address (only
/// when exactly one does: two machines behind one address are not guessed between).
pub fn person<'a>(peers: &'a [PeerStatus], session: &Session) -> Option<(&'a PeerStatus, Why)> {
    if let Some(p) = peers.iter().find(|p| p.online && p.speakers) {
        return Some((p, Why::Marked));
    }
    let client = session.client?;
    let mut from_client = peers.iter().filter(|p| {
        p.online
            && p.remote
                .as_deref()
                .and_then(|r| r.parse::<SocketAddr>().ok())
                .is_some_and(|a| canonical(a.ip()) == client)
    });
    match (from_client.next(), from_client.next()) {
        (Some(p), None) => Some((p, Why::SshClient)),
        _ => None,
    }
}

/// What to run so that the person's own machine plays what this screen plays: on
/// the laptop, trust this machine and dial it (`jhack serve` keeps the connection,
/// so it works behind NAT), letting this screen drive its sound devices and talk
/// through its microphone (`control`, `--call`); here, trust the laptop back once
/// its id is known.
pub fn setup_hint(my_id: &str, my_address: Option<&str>, host: &str) -> Vec<String> {
    let at = my_address.map_or_else(String::new, |a| format!(" {a}"));
    vec![
        "No sound device here, and none of your machines is connected. On your laptop:".into(),
        format!(
            "  jhack peer add {my_id}{at} --name {host} --allow play,voice,control && jhack serve --call"
        ),
        "then here (its id: `jhack id` there):".into(),
        "  jhack peer add LAPTOP-ID --allow play,voice --speakers yes".into(),
        "Only SSH gets through? `jhack tunnel` (see the README).".into(),
    ]
}

/// The address a laptop should dial for this machine: the server's address of the
/// SSH connection (what the person reached) with our listening port.
pub fn dial_address(connection: Option<&str>, listen: Option<SocketAddr>) -> Option<String> {
    let port = listen?.port();
    let server = connection?
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.parse::<IpAddr>().ok())
        .map(canonical)?;
    Some(SocketAddr::new(server, port).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, online: bool, remote: Option<&str>, speakers: bool) -> PeerStatus {
        PeerStatus {
            name: name.into(),
            id: format!("{name}-id"),
            address: None,
            allow: "play".into(),
            online,
            rtt_ms: None,
            transfers: 0,
            datagrams_dropped: 0,
            protocol: None,
            last_error: None,
            sync: None,
            sync_state: None,
            shares: Vec::new(),
            remote: remote.map(str::to_string),
            speakers,
        }
    }

    #[test]
    fn the_session_comes_from_the_environment_text() {
        let s = session_from(Some("192.0.2.7 51234 198.51.100.2 22"), None, true);
        assert_eq!(
            s,
            Some(Session {
                client: Some("192.0.2.7".parse().unwrap())
            })
        );
        let s = session_from(Some("::ffff:10.0.0.5 4000 ::1 22"), None, false);
        assert_eq!(
            s,
            Some(Session {
                client: Some("10.0.0.5".parse().unwrap())
            })
        );
        assert_eq!(
            session_from(None, Some("10.1.1.1 5 22"), false),
            Some(Session {
                client: Some("10.1.1.1".parse().unwrap())
            })
        );
        assert_eq!(
            session_from(None, None, true),
            Some(Session { client: None })
        );
        assert_eq!(session_from(None, None, false), None);
        assert_eq!(
            session_from(Some("garbage"), None, false),
            Some(Session { client: None })
        );
    }

    #[test]
    fn the_person_is_the_marked_machine_or_the_one_at_the_client_address() {
        let s = Session {
            client: Some("10.0.0.5".parse().unwrap()),
        };
        let peers = vec![
            peer("studio", true, Some("10.0.0.9:7355"), false),
            peer("laptop", true, Some("[::ffff:10.0.0.5]:40000"), false),
        ];
        let (p, why) = person(&peers, &s).expect("found");
        assert_eq!((p.name.as_str(), why), ("laptop", Why::SshClient));
        // Marked beats the address.
        let mut marked = peers.clone();
        marked[0].speakers = true;
        let (p, why) = person(&marked, &s).expect("found");
        assert_eq!((p.name.as_str(), why), ("studio", Why::Marked));
        // Offline ones do not count; two at one address are not guessed between.
        let mut off = peers.clone();
        off[1].online = false;
        assert!(person(&off, &s).is_none());
        let two = vec![
            peer("a", true, Some("10.0.0.5:1"), false),
            peer("b", true, Some("10.0.0.5:2"), false),
        ];
        assert!(person(&two, &s).is_none());
        assert!(person(&peers, &Session { client: None }).is_none());
    }

    #[test]
    fn the_hint_names_both_commands() {
        let h = setup_hint("9Y8V-FD6X", Some("198.51.100.2:7355"), "server").join("\n");
        assert!(h.contains("jhack peer add 9Y8V-FD6X 198.51.100.2:7355 --name server"));
        assert!(h.contains("jhack serve"));
        assert!(h.contains("--speakers yes"));
        assert_eq!(
            dial_address(
                Some("192.0.2.7 51234 198.51.100.2 22"),
                Some("[::]:7355".parse().unwrap())
            ),
            Some("198.51.100.2:7355".into())
        );
    }
}
