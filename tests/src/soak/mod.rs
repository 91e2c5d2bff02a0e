//! The parts of `warden-soak` (tests/src/bin/warden-soak.rs), an hour of everything at
//! once against release binaries: legitimate load whose every answer is checked
//! (`load`), the operator's applies, key churn and control-plane restarts (`ops`), the
//! attacks in turn (`attack`), the processes kept running with their logs on disk
//! (`daemon`), and the CSV, plot and arithmetic of the results (`report`).

pub mod attack;
pub mod daemon;
pub mod load;
pub mod ops;
pub mod report;
