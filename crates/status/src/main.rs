//! `atelier-status`: job progress, queue depth and stage timings over gRPC.

fn main() -> anyhow::Result<()> {
    atelier_status::run_main()
}
