//! Reading the generate request: JSON errors become 400, contract errors 422,
//! each naming the field the way the client wrote it (`inputImages[0].view`).

use atelier_core::request::GenerateRequest;
use serde_json::error::Category;

use crate::ApiError;

/// Parses and validates a generate request body.
pub fn parse_request(body: &[u8]) -> Result<GenerateRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let request: GenerateRequest = match serde_path_to_error::deserialize(de) {
        Ok(request) => request,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            return Err(match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => {
                    ApiError::MalformedJson(format!("malformed JSON: {inner}"))
                }
                Category::Data => data_error(&path, &inner),
            });
        }
    };
    request.validate()?;
    Ok(request)
}

/// Names the field of a well-formed body that does not fit the contract.
fn data_error(path: &str, error: &serde_json::Error) -> ApiError {
    let text = error.to_string();
    // serde says "unknown field `x`, expected one of ... at line 1 column 9".
    let message = text.split(" at line ").next().unwrap_or(&text).to_string();
    let field = match message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        Some(name) if path == "." || path.is_empty() => name.to_string(),
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ => path.to_string(),
    };
    let field = if field.is_empty() || field == "." {
        "body".to_string()
    } else {
        field
    };
    ApiError::InvalidField { field, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> (u16, Option<String>) {
        match parse_request(body.as_bytes()) {
            Ok(_) => (200, None),
            Err(e) => {
                let status = e.status_and_code().0.as_u16();
                let field = match e {
                    ApiError::InvalidField { field, .. } => Some(field),
                    _ => None,
                };
                (status, field)
            }
        }
    }

    const GOOD: &str = r#"{"inputImages":[{"url":"https://x.test/a.jpg","view":"front","backgrounds":[0,1,1]}],"productType":"general","gender":"male","text":"Test 1","upscale":true}"#;

    #[test]
    fn the_old_clients_body_parses() {
        let req = parse_request(GOOD.as_bytes()).expect("valid");
        assert_eq!(req.input_images.len(), 1);
        assert!(req.upscale);
    }

    #[test]
    fn syntax_errors_are_400() {
        assert_eq!(field_of("{\"inputImages\": [").0, 400);
        assert_eq!(field_of("").0, 400);
        assert_eq!(field_of("not json").0, 400);
    }

    #[test]
    fn unknown_fields_are_named() {
        let body = GOOD.replace(
            "\"upscale\":true",
            "\"upscale\":true,\"callbackUrl\":\"https://x\"",
        );
        assert_eq!(field_of(&body), (422, Some("callbackUrl".into())));
        let body = GOOD.replace("\"view\":\"front\"", "\"view\":\"front\",\"veiw\":1");
        let (status, field) = field_of(&body);
        assert_eq!(status, 422);
        assert_eq!(field.as_deref(), Some("inputImages[0].veiw"));
    }

    #[test]
    fn wrong_types_and_values_name_their_field() {
        let body = GOOD.replace("\"view\":\"front\"", "\"view\":\"top\"");
        assert_eq!(field_of(&body), (422, Some("inputImages[0].view".into())));
        let body = GOOD.replace("[0,1,1]", "[0,1,9]");
        let (status, field) = field_of(&body);
        assert_eq!(status, 422);
        assert!(
            field
                .unwrap_or_default()
                .starts_with("inputImages[0].backgrounds")
        );
        let body = GOOD.replace("\"upscale\":true", "\"upscale\":\"yes\"");
        assert_eq!(field_of(&body), (422, Some("upscale".into())));
    }
}
