//! `atelier-upscaling`: the upscaling stage as a service (see atelier-worker).

fn main() -> anyhow::Result<()> {
    atelier_worker::run_main(atelier_core::pipeline::Stage::Upscaling)
}
