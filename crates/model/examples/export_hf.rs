//! Load a Hugging Face model directory and export it again (e.g. to check that Python
//! `sentence_transformers.SentenceTransformer(OUT)` loads what hybrid-ir writes).
//!
//! `cargo run --release -p hybrid-ir-model --example export_hf -- models/multilingual-e5-small /tmp/e5-export`

use hybrid_ir_model::{DeviceSpec, LoadOptions, SentenceEncoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: export_hf SRC_DIR OUT_DIR".into());
    };
    let model = SentenceEncoder::load(src.as_ref(), &DeviceSpec::Flex.device(), &LoadOptions::default())?;
    model.export(out.as_ref())?;
    println!("exported {} -> {out}", model.info.name);
    Ok(())
}
