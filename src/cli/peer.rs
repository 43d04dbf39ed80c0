//! `jhack id` and `jhack peer add|list|rm`: who this jhack is, and whom it trusts.
//! The trust store is a file the running jhack re-reads when it changes, so these
//! work the same with or without one running; `peer list` asks the running one for
//! online state and round-trip times.

use super::args::{GlobalArgs, PeerCommand};
use super::context::Context;
use super::error::{CliError, chain};
use crate::app::control::{Request, Response};
use crate::net::{
    Identity, PeerId, PeerStatus, Permissions, SyncRelation, TrustStore, TrustedPeer, trust,
};

/// `jhack id`.
pub fn id(g: &GlobalArgs) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    ctx.home
        .create()
        .map_err(|e| CliError::failure(chain(&e)))?;
    let me = Identity::load_or_create(&ctx.home.identity_dir())
        .map_err(|e| CliError::failure(chain(&e)))?;
    outln!("{}", me.id);
    outln!(
        "listens on {} (UDP); peers add it with: jhack peer add {} <this machine's address>",
        ctx.config.net.listen,
        me.id
    );
    Ok(())
}

pub fn run(g: &GlobalArgs, c: PeerCommand) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    ctx.home
        .create()
        .map_err(|e| CliError::failure(chain(&e)))?;
    let path = ctx.home.trust_file();
    let mut store = TrustStore::load(&path).map_err(|e| CliError::input(chain(&e)))?;
    match c {
        PeerCommand::Add {
            id,
            addr,
            name,
            allow,
            sync,
            speakers,
        } => {
            let id: PeerId = id
                .parse()
                .map_err(|e| CliError::input(format!("{id}: {}", chain(&e))))?;
            let me = Identity::load_or_create(&ctx.home.identity_dir())
                .map_err(|e| CliError::failure(chain(&e)))?;
            if id == me.id {
                return Err(CliError::input("that is this jhack's own id"));
            }
            // Updating a peer keeps what is not given again (its name, permissions,
            // address and sync relation); a new peer may `play` unless told otherwise.
            let known = store.by_id(&id).cloned();
            let allow = match allow.as_deref() {
                Some(a) => Permissions::parse(a).map_err(|e| CliError::input(chain(&e)))?,
                None => known.as_ref().map_or_else(
                    || Permissions::parse("play").unwrap_or_default(),
                    |p| p.allow,
                ),
            };
            let address = match addr.as_deref() {
                Some(a) => Some(trust::clean_address(a).map_err(|e| CliError::input(chain(&e)))?),
                None => known.as_ref().and_then(|p| p.address.clone()),
            };
            let name = match (name, &known) {
                (Some(n), _) => n,
                (None, Some(p)) => p.name.clone(),
                (None, None) => format!("peer-{}", id.short().to_lowercase().replace('-', "")),
            };
            let sync = match sync.as_deref() {
                Some(s) => {
                    SyncRelation::parse(s).map_err(|e| CliError::input(format!("--sync: {e}")))?
                }
                None => known.as_ref().and_then(|p| p.sync),
            };
            let peer = TrustedPeer {
                name,
                id,
                address,
                allow,
                sync,
                shares: known.as_ref().map_or_else(Vec::new, |p| p.shares.clone()),
                speakers: match speakers.as_deref() {
                    Some("yes") => true,
                    Some("no") => false,
                    Some(other) => {
                        return Err(CliError::input(format!(
                            "--speakers {other}: say yes or no"
                        )));
                    }
                    None => known.as_ref().is_some_and(|p| p.speakers),
                },
            };
            let added = store
                .add(peer.clone())
                .map_err(|e| CliError::input(chain(&e)))?;
            store.save().map_err(|e| CliError::failure(chain(&e)))?;
            let entry = store.by_id(&id).cloned().unwrap_or(peer);
            outln!(
                "{} {} ({}){}: may {}",
                if added == trust::Added::New {
                    "trusted"
                } else {
                    "updated"
                },
                entry.name,
                entry.id.short(),
                entry
                    .address
                    .as_deref()
                    .map_or_else(String::new, |a| format!(" at {a}")),
                entry.allow
            );
            if let Some(r) = entry.sync {
                outln!("  library sync: {}", r.name());
            }
            if entry.speakers {
                outln!("  my speakers: a screen run over SSH on this machine plays there");
            }
            Ok(())
        }
        PeerCommand::Rm { peer } => {
            let gone = store
                .remove(&peer)
                .map_err(|e| CliError::input(chain(&e)))?;
            store.save().map_err(|e| CliError::failure(chain(&e)))?;
            outln!("removed {} ({})", gone.name, gone.id.short());
            Ok(())
        }
        PeerCommand::List { json } => {
            let socket = ctx.home.socket_path();
            let live = match crate::app::control::request(
                &socket,
                &Request::Peers,
                Request::Peers.suggested_timeout(),
            ) {
                Ok(Response::Peers { peers }) => Some(peers),
                _ => None,
            };
            let known = live.is_some();
            let peers = live.unwrap_or_else(|| store.peers().iter().map(offline).collect());
            if json {
                let text =
                    serde_json::to_string(&peers).map_err(|e| CliError::failure(e.to_string()))?;
                outln!("{text}");
            } else {
                print_table(&peers, known);
            }
            Ok(())
        }
    }
}

fn offline(p: &TrustedPeer) -> PeerStatus {
    PeerStatus {
        name: p.name.clone(),
        id: p.id.to_string(),
        address: p.address.clone(),
        allow: p.allow.to_string(),
        online: false,
        rtt_ms: None,
        transfers: 0,
        datagrams_dropped: 0,
        protocol: None,
        last_error: None,
        sync: p.sync.map(|r| r.name().to_string()),
        sync_state: None,
        shares: p.shares.clone(),
        remote: None,
        speakers: p.speakers,
    }
}

/// `jhack share TAG --with P` / `jhack unshare TAG --with P`: offers (or withdraws)
/// the sounds tagged TAG to a peer, in `peers.toml`. A running screen or `jhack
/// serve` reads the file again within a second: its subscribers see the change at
/// once, and a withdrawn sound can no longer be fetched.
pub fn share(g: &GlobalArgs, tag: &str, with: &str, on: bool) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let path = ctx.home.trust_file();
    let mut store = TrustStore::load(&path).map_err(|e| CliError::input(chain(&e)))?;
    let mut peer = store
        .find(with)
        .map_err(|e| CliError::input(chain(&e)))?
        .clone();
    let tag = crate::library::clean_tags(&[tag.to_string()])
        .map_err(CliError::input)?
        .pop()
        .ok_or_else(|| CliError::input("an empty tag cannot be shared"))?;
    let had = peer.shares.contains(&tag);
    if on {
        peer.shares.push(tag.clone());
    } else {
        peer.shares.retain(|t| *t != tag);
    }
    let (name, id, allow) = (peer.name.clone(), peer.id, peer.allow);
    store.add(peer).map_err(|e| CliError::input(chain(&e)))?;
    store.save().map_err(|e| CliError::failure(chain(&e)))?;
    let now = store
        .by_id(&id)
        .map(|p| p.shares.clone())
        .unwrap_or_default();
    match (on, had) {
        (true, true) => outln!("{tag} was already shared with {name}"),
        (true, false) => outln!("shared the sounds tagged {tag} with {name}"),
        (false, true) => outln!("withdrew {tag} from {name}"),
        (false, false) => outln!("{tag} was not shared with {name}"),
    }
    outln!(
        "  {name} sees: {}",
        if now.is_empty() {
            "nothing".to_string()
        } else {
            now.join(", ")
        }
    );
    if on && !allow.read {
        let mut words = allow.names();
        words.push("read");
        outln!(
            "  note: {name} may not read here yet, so it sees nothing: jhack peer add {id} --allow {}",
            words.join(",")
        );
    }
    Ok(())
}

fn print_table(peers: &[PeerStatus], known: bool) {
    if peers.is_empty() {
        outln!("no trusted peers; add one with: jhack peer add ID ADDR");
        return;
    }
    let w = peers
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    outln!(
        "{:<w$}  {:<39}  {:<24}  {:<22}  STATE",
        "NAME",
        "ID",
        "ADDRESS",
        "ALLOW"
    );
    for p in peers {
        let state = if !known {
            "?".to_string()
        } else if p.online {
            p.rtt_ms
                .map_or_else(|| "online".to_string(), |r| format!("online, {r:.1} ms"))
        } else {
            p.last_error
                .as_deref()
                .map_or_else(|| "offline".to_string(), |e| format!("offline: {e}"))
        };
        let state = match (&p.sync, &p.sync_state) {
            (Some(r), Some(s)) => format!("{state}; {r}: {s}"),
            (Some(r), None) => format!("{state}; {r}"),
            _ => state,
        };
        let state = if p.shares.is_empty() {
            state
        } else {
            format!("{state}; shared: {}", p.shares.join(","))
        };
        let state = if p.speakers {
            format!("{state}; my speakers")
        } else {
            state
        };
        outln!(
            "{:<w$}  {:<39}  {:<24}  {:<22}  {state}",
            p.name,
            p.id,
            p.address.as_deref().unwrap_or("-"),
            p.allow
        );
    }
    if !known {
        outln!("(no jhack is running on this home: online state unknown)");
    }
}
