//! Sandbox tiers for `/run` and the `run_code` tool: whether a tier exists on this server
//! and may be used in a conversation, and why not when it may not.
//!
//! The tier itself is the sandbox's business (`robit_sandbox::Tiers`); this file decides
//! only what is offered and allowed here. The `run_code` tool's description and arguments
//! are `tools.rs`'s.

use crate::settings::Effective;
use robit_sandbox::CodeRunner;
use robit_types::Tier;

/// Whether the sandbox has `tier` at all (the gVisor tier is absent without runsc or the
/// rootfs; `robit doctor` says why).
pub(crate) fn present(sandbox: Option<&dyn CodeRunner>, tier: Tier) -> bool {
    sandbox.is_some_and(|s| s.tiers().contains(&tier))
}

/// Whether runs in this conversation may use the gVisor tier.
pub(crate) fn gvisor_offered(sandbox: Option<&dyn CodeRunner>, settings: &Effective) -> bool {
    settings.gvisor.value && present(sandbox, Tier::Gvisor)
}

/// `Ok` when `tier` may run here; otherwise the sentence to show the user (or the model).
pub(crate) fn check(
    sandbox: Option<&dyn CodeRunner>,
    settings: &Effective,
    tier: Tier,
) -> Result<(), String> {
    match tier {
        Tier::Wasm => Ok(()),
        Tier::Gvisor if !present(sandbox, Tier::Gvisor) => Err(
            "the gvisor sandbox tier is not available on this server (an admin can run \
             `robit doctor` to see why)"
                .into(),
        ),
        Tier::Gvisor if !settings.gvisor.value => {
            Err("the gvisor sandbox tier is turned off in this channel (`sandbox.gvisor`)".into())
        }
        Tier::Gvisor => Ok(()),
    }
}
