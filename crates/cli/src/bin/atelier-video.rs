//! `atelier-video`: the slideshow encoder as a helper process (see
//! `atelier_video::helper`). `atelier process` and `atelier serve` pipe their
//! images to it, so only this binary loads FFmpeg.

fn main() -> std::process::ExitCode {
    atelier_imaging::memory::return_large_buffers_to_the_system();
    atelier_video::helper::main()
}
