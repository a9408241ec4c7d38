//! `atelier-generation`: the generation stage as a service (see atelier-worker).

fn main() -> anyhow::Result<()> {
    atelier_worker::run_main(atelier_core::pipeline::Stage::Generation)
}
