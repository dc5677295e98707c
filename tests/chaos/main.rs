//! The chaos suite: the real `robit serve` is killed, restarted, cut off from its database
//! and flooded, and every test checks from outside (the emulators' records and the
//! database's rows) that each acknowledged message gets exactly one complete answer.

mod crash;
mod flood;
mod outage;
use robit_system_tests::platform;
mod replicas;
mod unrecorded;
