//! Writes the seed corpora: `cargo run --example seeds` (from `fuzz/`).
//! Seeds named `found-*` are inputs the targets once crashed on: they go to
//! `regressions/<target>/`, which `cmin` leaves alone and `./dev fuzz`
//! replays on every run; the others to `corpus/<target>/`.
fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, name, bytes) in safeverbs_fuzz::seeds::all() {
        let kind = if name.starts_with("found-") {
            "regressions"
        } else {
            "corpus"
        };
        let dir = root.join(kind).join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    Ok(())
}
