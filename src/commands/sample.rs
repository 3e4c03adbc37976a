//! `horsestream sample-video`: the project's own test video, made from a photo.

use std::path::{Path, PathBuf};

use anyhow::Context;
use horsestream_ingest::{SampleInfo, SampleSpec, make_sample_video};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the MP4.
    #[arg(long, default_value = ".horsestream/sample.mp4")]
    pub out: PathBuf,
    #[command(flatten)]
    pub photo: PhotoOption,
    /// Length in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PhotoOption {
    /// The photo the sample pans and zooms over.
    #[arg(
        long = "photo",
        env = "HORSESTREAM_SAMPLE_PHOTO",
        default_value = "../shared/media/horses.jpg"
    )]
    pub path: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = SampleSpec {
        duration: std::time::Duration::from_secs(args.seconds),
        ..SampleSpec::default()
    };
    let info = write(&args.photo.path, &args.out, &spec)?;
    println!(
        "{}: {}x{}, {} frames, {:.1} s; whole photo shown during {:?} µs",
        args.out.display(),
        info.width,
        info.height,
        info.frame_count,
        info.duration_us as f64 / 1e6,
        info.whole_photo_us
    );
    Ok(())
}

pub fn write(photo: &Path, out: &Path, spec: &SampleSpec) -> anyhow::Result<SampleInfo> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(make_sample_video(photo, out, spec)?)
}
