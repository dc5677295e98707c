//! Integration tests of the gVisor tier against a real `runsc` and the rootfs built by
//! `scripts/build-gvisor-rootfs`.
//!
//! Without `runsc` on this machine every test prints why and passes without running
//! (CI installs it with `scripts/install-runsc`). With `runsc` present, a missing rootfs
//! is a failure, not a skip. The rootfs is `ROBIT_GVISOR_ROOTFS` or the default
//! `/var/tmp/robit-gvisor-rootfs`.

mod common;
mod containment;
mod runs;
