//! What the result cache did for a job, stage by stage: the request's
//! `Cache-Control: no-cache` travels with the job here, and each stage records
//! how many of its items it reused (`hits`) and how many it made (`misses`).
//! The response shows it as `metadata.cache`.

use serde::{Deserialize, Serialize};

use crate::pipeline::Stage;

/// Items of one stage reused from the cache and made afresh.
///
/// `hits + misses` is the number of items the stage handled (inputs for
/// analysis, variations for generation and upscaling, the video for
/// post-processing), whether or not the cache is on: with the cache off or
/// bypassed every item is a miss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CacheCounts {
    /// Items copied from an earlier job's identical work.
    pub hits: u32,
    /// Items computed by this job.
    pub misses: u32,
}

impl CacheCounts {
    /// Counts one item: reused (`hit`) or made.
    pub fn add(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    /// Counts of a list of outcomes (true = reused).
    pub fn of(hits: impl IntoIterator<Item = bool>) -> Self {
        let mut counts = Self::default();
        for hit in hits {
            counts.add(hit);
        }
        counts
    }
}

/// `metadata.cache`: whether the request bypassed the cache, and per stage
/// what was reused. Stage names as in `processing_times`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct CacheUse {
    /// The request carried `Cache-Control: no-cache`: nothing was read from the
    /// cache (what the job made is still stored for later requests).
    pub bypassed: bool,
    pub analysis: CacheCounts,
    pub generation: CacheCounts,
    pub upscaling: CacheCounts,
    /// The slideshow video (the report names its job and is always made).
    pub post_processing: CacheCounts,
}

impl CacheUse {
    /// Records `counts` against `stage` (replacing what a failed earlier
    /// attempt of the same stage recorded).
    pub fn set(&mut self, stage: Stage, counts: CacheCounts) {
        *self.get_mut(stage) = counts;
    }

    /// The counts of `stage`.
    pub fn get(&self, stage: Stage) -> CacheCounts {
        match stage {
            Stage::Analysis => self.analysis,
            Stage::Generation => self.generation,
            Stage::Upscaling => self.upscaling,
            Stage::PostProcessing => self.post_processing,
        }
    }

    fn get_mut(&mut self, stage: Stage) -> &mut CacheCounts {
        match stage {
            Stage::Analysis => &mut self.analysis,
            Stage::Generation => &mut self.generation,
            Stage::Upscaling => &mut self.upscaling,
            Stage::PostProcessing => &mut self.post_processing,
        }
    }
}

/// Whether a request's `Cache-Control` header values ask to bypass the cache:
/// `no-cache` or `no-store` among the comma-separated directives, any case.
pub fn bypass_requested<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|d| d.split('=').next().unwrap_or_default().trim())
        .any(|d| d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_stages() {
        let mut cache = CacheUse::default();
        cache.set(Stage::Generation, CacheCounts::of([true, false, true]));
        assert_eq!(cache.get(Stage::Generation), CacheCounts { hits: 2, misses: 1 });
        assert_eq!(cache.get(Stage::Analysis), CacheCounts::default());
        let json = serde_json::to_value(cache).expect("json");
        assert_eq!(json["generation"]["hits"], 2);
        assert_eq!(json["post_processing"]["misses"], 0);
        assert_eq!(json["bypassed"], false);
        // Results stored before the cache existed read as nothing reused.
        let old: CacheUse = serde_json::from_str("{}").expect("defaults");
        assert_eq!(old, CacheUse::default());
    }

    #[test]
    fn no_cache_directives_are_recognised() {
        assert!(bypass_requested(["no-cache"]));
        assert!(bypass_requested(["max-age=0, No-Cache"]));
        assert!(bypass_requested(["private", "no-store"]));
        assert!(!bypass_requested(["max-age=60"]));
        assert!(!bypass_requested(["no-transform"]));
        assert!(!bypass_requested(std::iter::empty()));
    }
}
