//! One-to-one mappings between core enums and their protobuf twins.
//!
//! Encoding is a total `From`; decoding goes through [`WireEnum::from_wire`] so
//! the error names the field that held the bad value (`TryFrom` names the enum's
//! usual field for callers that hold a typed proto enum).

use atelier_core::{
    analysis::MaskSource,
    event::EventKind,
    job::JobKind,
    output::{ImageFormat, Preset},
    pipeline::Stage,
    request::{BackgroundKind, Gender, ProductType, View},
};

use crate::{ProtoError, v1};

/// A core enum with a protobuf twin whose zero value means "unspecified".
pub(crate) trait WireEnum: Sized {
    /// Decodes the raw `i32` of field `field`, refusing zero and unknown values.
    fn from_wire(raw: i32, field: &str) -> Result<Self, ProtoError>;
}

macro_rules! wire_enum {
    ($core:ident <=> $proto:ident, $field:literal { $($c:ident <=> $p:ident),+ $(,)? }) => {
        impl From<$core> for v1::$proto {
            fn from(value: $core) -> Self {
                match value {
                    $($core::$c => Self::$p,)+
                }
            }
        }

        impl TryFrom<v1::$proto> for $core {
            type Error = ProtoError;
            fn try_from(value: v1::$proto) -> Result<Self, ProtoError> {
                Self::from_wire(value.into(), $field)
            }
        }

        impl WireEnum for $core {
            fn from_wire(raw: i32, field: &str) -> Result<Self, ProtoError> {
                match v1::$proto::try_from(raw) {
                    $(Ok(v1::$proto::$p) => Ok(Self::$c),)+
                    Ok(v1::$proto::Unspecified) => Err(ProtoError::unspecified(field)),
                    Err(_) => Err(ProtoError::unknown_enum(field, raw)),
                }
            }
        }
    };
}

wire_enum!(Stage <=> Stage, "stage" {
    Analysis <=> Analysis,
    Generation <=> Generation,
    Upscaling <=> Upscaling,
    PostProcessing <=> PostProcessing,
});

wire_enum!(JobKind <=> JobKind, "kind" { Images <=> Images, Full <=> Full });

wire_enum!(EventKind <=> EventKind, "kind" {
    Queued <=> Queued,
    StageStarted <=> StageStarted,
    StageFinished <=> StageFinished,
    StageRetrying <=> StageRetrying,
    Completed <=> Completed,
    Failed <=> Failed,
    Cancelled <=> Cancelled,
});

wire_enum!(ImageFormat <=> ImageFormat, "format" { Jpeg <=> Jpeg, Png <=> Png, Webp <=> Webp });

wire_enum!(Preset <=> OutputPreset, "preset" {
    Default <=> Default,
    Amazon <=> Amazon,
    Shopify <=> Shopify,
    Zalando <=> Zalando,
});

wire_enum!(View <=> View, "view" {
    Front <=> Front,
    Back <=> Back,
    Side <=> Side,
    Detail <=> Detail,
});

wire_enum!(BackgroundKind <=> Background, "background" {
    White <=> White,
    Plain <=> Plain,
    Random <=> Random,
});

wire_enum!(ProductType <=> ProductType, "product_type" {
    General <=> General,
    Tops <=> Tops,
    Bottoms <=> Bottoms,
    Dresses <=> Dresses,
    Outerwear <=> Outerwear,
    Shoes <=> Shoes,
    Accessories <=> Accessories,
});

wire_enum!(Gender <=> Gender, "gender" { Male <=> Male, Female <=> Female, Unisex <=> Unisex });

wire_enum!(MaskSource <=> MaskSource, "mask_source" { Alpha <=> Alpha, Backdrop <=> Backdrop, Model <=> Model });

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<C, P>(all: &[C])
    where
        C: WireEnum + Copy + PartialEq + std::fmt::Debug + Into<P>,
        P: Into<i32>,
    {
        for &value in all {
            let wire: i32 = value.into().into();
            assert_ne!(wire, 0, "{value:?} encodes as unspecified");
            assert_eq!(C::from_wire(wire, "f").expect("decodes"), value);
        }
    }

    #[test]
    fn every_variant_round_trips() {
        round_trips::<_, v1::Stage>(&Stage::ALL);
        round_trips::<_, v1::JobKind>(&[JobKind::Images, JobKind::Full]);
        round_trips::<_, v1::View>(&[View::Front, View::Back, View::Side, View::Detail]);
        round_trips::<_, v1::Background>(&BackgroundKind::ALL);
        round_trips::<_, v1::ProductType>(&[
            ProductType::General,
            ProductType::Tops,
            ProductType::Bottoms,
            ProductType::Dresses,
            ProductType::Outerwear,
            ProductType::Shoes,
            ProductType::Accessories,
        ]);
        round_trips::<_, v1::Gender>(&[Gender::Male, Gender::Female, Gender::Unisex]);
        round_trips::<_, v1::MaskSource>(&[MaskSource::Alpha, MaskSource::Backdrop, MaskSource::Model]);
        round_trips::<_, v1::EventKind>(&EventKind::ALL);
    }

    #[test]
    fn zero_and_unknown_values_name_the_field() {
        let err = View::from_wire(0, "view").unwrap_err();
        assert!(matches!(err, ProtoError::Unspecified { .. }), "{err}");
        assert_eq!(err.field(), Some("view"));
        let err = Gender::from_wire(42, "gender").unwrap_err();
        assert!(matches!(err, ProtoError::UnknownEnum { value: 42, .. }), "{err}");
        let err = Stage::try_from(v1::Stage::Unspecified).unwrap_err();
        assert_eq!(err.field(), Some("stage"));
        assert_eq!(
            Stage::try_from(v1::Stage::Upscaling).expect("known"),
            Stage::Upscaling
        );
    }
}
