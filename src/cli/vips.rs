//! `--vip` and `--vip-dev` at start: each address on its interface, the capabilities they
//! need, and addresses an earlier run left behind. Read from the host, so not in `config`.

use super::config::Config;
use crate::vip::{self, Vip};

/// Why the node cannot hold its virtual IPs: the line to print and the exit code (2 for a
/// flag that names no usable interface, 1 for a missing capability).
pub struct Refusal {
    pub line: String,
    pub code: u8,
}

/// The node's virtual IPs, each on its interface: `--vip-dev`, else the interface of the
/// route to the address's prefix, else the one of `--bind`.
pub fn resolve(config: &Config) -> Result<Vec<Vip>, Refusal> {
    if config.vips.is_empty() {
        return Ok(Vec::new());
    }
    let usage = |line: String| Refusal { line, code: 2 };
    // A loopback --bind (the default) names no interface other hosts reach.
    let bind = Some(config.bind).filter(|b| !b.is_unspecified() && !b.is_loopback());
    let mut out = Vec::new();
    for &(addr, prefix) in &config.vips {
        let dev = match &config.vip_dev {
            Some(d) => d.clone(),
            None => match vip::default_device(addr, prefix, bind) {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return Err(usage(format!(
                        "--vip: no interface has an address in {addr}/{prefix}{}; name one \
                         with --vip-dev",
                        bind.map_or(String::new(), |b| format!(" or holds --bind {b}"))
                    )))
                }
                Err(e) => {
                    return Err(Refusal {
                        line: format!("--vip: cannot read the interfaces: {e}"),
                        code: 1,
                    })
                }
            },
        };
        let flag = if config.vip_dev.is_some() {
            "--vip-dev"
        } else {
            "--vip"
        };
        out.push(Vip::new(addr, prefix, &dev).map_err(|e| usage(format!("{flag}: {e}")))?);
    }
    let missing = vip::missing_capabilities();
    if !missing.is_empty() {
        return Err(Refusal {
            line: format!(
                "--vip: needs CAP_NET_ADMIN and CAP_NET_RAW, and this process lacks {} (run as \
                 root, or see the bully-vip@ unit of the Debian package)",
                missing.join(" and ")
            ),
            code: 1,
        });
    }
    Ok(out)
}

/// Removes addresses an earlier run left on their interfaces (its holder killed with it,
/// a crash of the host): this node does not lead yet, so it holds none of them.
pub fn remove_leftovers(vips: &[Vip]) {
    for v in vips {
        if v.held().unwrap_or(false) {
            match v.remove() {
                Ok(()) => log::warn!("removed {v}, left over from an earlier run"),
                Err(e) => log::error!("cannot remove {v}, left over from an earlier run: {e}"),
            }
        }
    }
}
