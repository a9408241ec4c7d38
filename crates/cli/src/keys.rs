//! `atelier keys`: API keys in the job store the gateways read (PostgreSQL of
//! the stack, or `atelier serve`'s SQLite with `--data`). A key's secret is
//! printed once, alone on stdout; only its hash is stored.

use anyhow::{Context, bail};
use atelier_core::settings::Settings;
use atelier_jobs::{ApiKey, Store};
use base64::Engine as _;

use crate::args::{KeysArgs, KeysCommand};

/// Random bytes of a webhook signing secret.
const WEBHOOK_SECRET_BYTES: usize = 24;

pub fn run(mut settings: Settings, args: KeysArgs) -> anyhow::Result<()> {
    if let Some(data) = &args.data {
        settings.database.url = crate::serve::database_url(data)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = atelier_jobs::connect(&settings.database)
            .await
            .context("opening the job store")?;
        match args.command {
            KeysCommand::Create {
                name,
                tenant,
                admin,
                rate_per_minute,
                max_in_flight,
            } => {
                let auth = &settings.gateway.auth;
                let limit = |given: Option<u32>, default: u32| {
                    let n = given.unwrap_or(default);
                    (n > 0).then_some(n)
                };
                create(
                    &*store,
                    ApiKey {
                        tenant: tenant.unwrap_or_else(|| name.clone()),
                        name,
                        admin,
                        rate_per_minute: limit(rate_per_minute, auth.default_rate_per_minute),
                        max_in_flight: limit(max_in_flight, auth.default_max_in_flight),
                        prefix: String::new(),
                        webhook_secret: Some(webhook_secret()),
                        created_at_ms: atelier_core::clock::now_ms(),
                        revoked_at_ms: None,
                    },
                )
                .await
            }
            KeysCommand::List => list(&*store).await,
            KeysCommand::Revoke { name } => {
                if !store.revoke_key(&name, atelier_core::clock::now_ms()).await? {
                    bail!("no active API key named `{name}`");
                }
                eprintln!("revoked `{name}` (gateways stop accepting it within gateway.auth.cache_seconds)");
                Ok(())
            }
            KeysCommand::RotateWebhookSecret { name } => {
                let secret = webhook_secret();
                if !store.set_webhook_secret(&name, &secret).await? {
                    bail!("no API key named `{name}`");
                }
                println!("{secret}");
                eprintln!("new webhook signing secret of `{name}` (shown once)");
                Ok(())
            }
        }
    })
}

async fn create(store: &dyn Store, mut key: ApiKey) -> anyhow::Result<()> {
    let (secret, hash, prefix) = atelier_jobs::new_key_secret();
    key.prefix = prefix;
    store.create_key(&key, &hash).await?;
    println!("{secret}");
    let limit = |v: Option<u32>| v.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    eprintln!(
        "API key `{}` for tenant `{}`{}: {} requests/minute, {} jobs in flight. It is shown once; store it now.",
        key.name,
        key.tenant,
        if key.admin { ", admin" } else { "" },
        limit(key.rate_per_minute),
        limit(key.max_in_flight),
    );
    if let Some(secret) = &key.webhook_secret {
        eprintln!("webhook signing secret (shown once): {secret}");
    }
    Ok(())
}

async fn list(store: &dyn Store) -> anyhow::Result<()> {
    let keys = store.keys().await?;
    println!(
        "{:<24} {:<24} {:<10} {:<6} {:>10} {:>9}  state",
        "name", "tenant", "prefix", "admin", "rate/min", "in flight"
    );
    let limit = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
    for key in keys {
        println!(
            "{:<24} {:<24} {:<10} {:<6} {:>10} {:>9}  {}",
            key.name,
            key.tenant,
            key.prefix,
            if key.admin { "yes" } else { "no" },
            limit(key.rate_per_minute),
            limit(key.max_in_flight),
            if key.is_active() { "active" } else { "revoked" },
        );
    }
    Ok(())
}

/// A Standard Webhooks signing secret: `whsec_` and base64 of random bytes.
fn webhook_secret() -> String {
    let bytes: [u8; WEBHOOK_SECRET_BYTES] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
