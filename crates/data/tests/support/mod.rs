//! Shared helpers of the data crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The project's data root: `$HYBRID_IR_DATA` or `<repo>/../shared/data`. Tests fail loudly if
/// it is missing rather than skipping.
pub fn data_root() -> PathBuf {
    let root = hybrid_ir_data::resolve_data_dir(None);
    let root = if root.is_dir() {
        root
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
    };
    assert!(
        root.join("xquad-r").is_dir(),
        "data root {} has no xquad-r/: set HYBRID_IR_DATA to the folder holding xquad-r/ and mlqa-r/",
        root.display()
    );
    root
}
