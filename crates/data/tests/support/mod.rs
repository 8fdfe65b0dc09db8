//! Shared helpers of the data crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The project's data root: `$HYBRID_IR_DATA` or `<repo>/../shared/data`. Tests fail loudly if
/// it is missing rather than skipping.
pub fn data_root() -> PathBuf {
    let beside_repo = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("../../../shared/data");
    hybrid_ir_data::locate_data_root(&[beside_repo]).unwrap_or_else(|e| panic!("{e}"))
}
