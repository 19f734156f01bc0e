//! The virtual IPs this node holds while it leads (`--vip`), and whether its holder holds
//! them right now: the hook runner says, `/nodeDetails`, `bully status` and `/metrics` show.

use crate::core::wire::VipDetails;
use crate::vip::Vip;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Vips {
    list: Vec<Vip>,
    held: AtomicBool,
}

impl Vips {
    pub fn new(list: Vec<Vip>) -> Vips {
        Vips {
            list,
            held: AtomicBool::new(false),
        }
    }

    pub fn list(&self) -> &[Vip] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    pub fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }

    /// As `/nodeDetails` lists them.
    pub fn details(&self) -> Vec<VipDetails> {
        let held = self.held();
        self.list
            .iter()
            .map(|v| VipDetails {
                address: format!("{}/{}", v.addr, v.prefix),
                dev: v.dev.clone(),
                held,
            })
            .collect()
    }
}
