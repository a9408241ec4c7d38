//! `atelier-gateway`: the HTTP API (see atelier-gateway's library docs).

fn main() -> anyhow::Result<()> {
    atelier_gateway::run_main()
}
