//! Shared helpers of the data crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The project's data root: `$HYBRID_IR_DATA` or `<repo>/../shared/data`. Tests fail loudly if
/// it is missing rather than skipping.
pub fn data_root() -> PathBuf {
    let beside_repo = hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    hybrid_ir_data::locate_data_root(&[beside_repo]).unwrap_or_else(|e| panic!("{e}"))
}
