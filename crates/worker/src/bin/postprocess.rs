//! `atelier-postprocess`: the postprocess stage as a service (see atelier-worker).
//! The only worker that encodes video, so the only one that links FFmpeg: it
//! encodes in-process instead of through the `atelier-video` helper.

fn main() -> anyhow::Result<()> {
    atelier_video::install();
    atelier_worker::run_main(atelier_core::pipeline::Stage::PostProcessing)
}
