//! The texts a person verifying sees, in English and Lithuanian, chosen by the link's language.

use axum::http::{header, HeaderMap};
use magic_link::Language;
use serde::Serialize;

/// Every text of the landing, flow and error pages; the templates print them as `t.name`.
#[derive(Debug, Serialize)]
pub(crate) struct Texts {
    /// The `lang` attribute.
    pub(crate) lang: &'static str,
    pub(crate) language_name: &'static str,
    pub(crate) title: &'static str,
    pub(crate) intro: &'static str,
    pub(crate) no_account: &'static str,
    pub(crate) steps: &'static str,
    pub(crate) language: &'static str,
    pub(crate) document: &'static str,
    pub(crate) document_hint: &'static str,
    pub(crate) selfie: &'static str,
    pub(crate) selfie_hint: &'static str,
    pub(crate) start: &'static str,
    pub(crate) demo_files: &'static str,
    pub(crate) demo_outcome: &'static str,
    pub(crate) approved: &'static str,
    pub(crate) denied: &'static str,
    pub(crate) submit: &'static str,
    pub(crate) quit: &'static str,
    /// The flow page's link to see where the session stands, without JavaScript.
    pub(crate) check_status: &'static str,
    pub(crate) done_title: &'static str,
    pub(crate) done_body: &'static str,
    pub(crate) result: &'static str,
    pub(crate) ended_title: &'static str,
    pub(crate) ended_body: &'static str,
    pub(crate) used_title: &'static str,
    pub(crate) expired_title: &'static str,
    pub(crate) deactivated_title: &'static str,
    pub(crate) new_link_body: &'static str,
    pub(crate) invalid_title: &'static str,
    pub(crate) invalid_body: &'static str,
    pub(crate) no_credit_title: &'static str,
    pub(crate) no_credit_body: &'static str,
    pub(crate) unavailable_title: &'static str,
    pub(crate) unavailable_body: &'static str,
    pub(crate) session_expired_title: &'static str,
    pub(crate) needs_review: &'static str,
    pub(crate) bad_request_title: &'static str,
    pub(crate) bad_request_body: &'static str,
    pub(crate) busy_title: &'static str,
    pub(crate) busy_body: &'static str,
}

pub(crate) const EN: Texts = Texts {
    lang: "en",
    language_name: "English",
    title: "Identity verification",
    intro: "You have been asked to verify your identity. It takes a few minutes.",
    no_account: "No login or account needed.",
    steps: "Steps",
    language: "Language",
    document: "Identity document",
    document_hint: "A photo of your passport, ID card or driving licence.",
    selfie: "Selfie",
    selfie_hint: "A photo of your face, to match against the document.",
    start: "Start verification",
    demo_files: "Demo: the files stay in your browser; nothing is uploaded.",
    demo_outcome: "Demo: choose the verification result",
    approved: "Approved",
    denied: "Denied",
    submit: "Submit",
    quit: "Quit verification",
    check_status: "Finished on another device? Check the status",
    done_title: "Verification complete",
    done_body: "Thank you. You can close this page.",
    result: "Result",
    ended_title: "This verification has ended",
    ended_body: "It was cancelled or timed out. Ask whoever sent you the link for a new one.",
    used_title: "This link has already been used",
    expired_title: "This link has expired",
    deactivated_title: "This link has been deactivated",
    new_link_body: "Links cannot be reused or extended. Ask whoever sent it to you for a new link.",
    invalid_title: "This link is not valid",
    invalid_body: "Check that you opened the whole address, or ask whoever sent it for a new link.",
    no_credit_title: "Verification is temporarily unavailable",
    no_credit_body: "The service cannot start a verification right now. Please try again later.",
    unavailable_title: "Something went wrong",
    unavailable_body: "Please try again in a minute. Your link has not been used.",
    session_expired_title: "This verification has timed out",
    needs_review: "Under review",
    bad_request_title: "The request was not understood",
    bad_request_body: "Go back and try again.",
    busy_title: "Too many attempts",
    busy_body: "Please wait a minute and try again. Your link has not been used.",
};

pub(crate) const LT: Texts = Texts {
    lang: "lt",
    language_name: "Lietuvių",
    title: "Tapatybės patvirtinimas",
    intro: "Jūsų prašoma patvirtinti savo tapatybę. Tai užtruks kelias minutes.",
    no_account: "Prisijungti ar kurti paskyros nereikia.",
    steps: "Žingsniai",
    language: "Kalba",
    document: "Asmens dokumentas",
    document_hint: "Paso, asmens tapatybės kortelės ar vairuotojo pažymėjimo nuotrauka.",
    selfie: "Asmenukė",
    selfie_hint: "Jūsų veido nuotrauka, palyginimui su dokumentu.",
    start: "Pradėti patvirtinimą",
    demo_files: "Demonstracija: failai lieka jūsų naršyklėje, niekas neįkeliama.",
    demo_outcome: "Demonstracija: pasirinkite patvirtinimo rezultatą",
    approved: "Patvirtinta",
    denied: "Atmesta",
    submit: "Pateikti",
    quit: "Nutraukti patvirtinimą",
    check_status: "Baigėte kitame įrenginyje? Patikrinkite būseną",
    done_title: "Patvirtinimas baigtas",
    done_body: "Ačiū. Šį puslapį galite uždaryti.",
    result: "Rezultatas",
    ended_title: "Šis patvirtinimas baigėsi",
    ended_body: "Jis buvo nutrauktas arba baigėsi jo laikas. Paprašykite naujos nuorodos.",
    used_title: "Ši nuoroda jau panaudota",
    expired_title: "Šios nuorodos galiojimas baigėsi",
    deactivated_title: "Ši nuoroda išjungta",
    new_link_body: "Nuorodų negalima naudoti pakartotinai ar pratęsti. Paprašykite ją atsiuntusio asmens naujos nuorodos.",
    invalid_title: "Ši nuoroda negalioja",
    invalid_body: "Patikrinkite, ar atidarėte visą adresą, arba paprašykite naujos nuorodos.",
    no_credit_title: "Patvirtinimas laikinai negalimas",
    no_credit_body: "Šiuo metu patvirtinimo pradėti negalima. Bandykite vėliau.",
    unavailable_title: "Įvyko klaida",
    unavailable_body: "Bandykite dar kartą po minutės. Jūsų nuoroda nepanaudota.",
    session_expired_title: "Šio patvirtinimo laikas baigėsi",
    needs_review: "Peržiūrima",
    bad_request_title: "Užklausa nesuprasta",
    bad_request_body: "Grįžkite ir bandykite dar kartą.",
    busy_title: "Per daug bandymų",
    busy_body: "Palaukite minutę ir bandykite dar kartą. Jūsų nuoroda nepanaudota.",
};

/// The texts for a link's language: Lithuanian for `lt` (any region), English otherwise.
pub(crate) fn for_language(language: &Language) -> &'static Texts {
    for_tag(language.as_str())
}

/// The texts for a BCP 47 tag.
pub(crate) fn for_tag(tag: &str) -> &'static Texts {
    let primary = tag.split(['-', '_']).next().unwrap_or_default();
    if primary.eq_ignore_ascii_case("lt") {
        &LT
    } else {
        &EN
    }
}

/// The texts for a request whose link is unknown (a forged or expired token), by its
/// `Accept-Language` header: see [`for_accept_language`].
pub(crate) fn for_request(headers: &HeaderMap) -> &'static Texts {
    for_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The texts for a request whose link is unknown (a forged or expired token): the first of
/// English and Lithuanian in `Accept-Language` (browsers list it in order of preference), else
/// English.
pub(crate) fn for_accept_language(header: Option<&str>) -> &'static Texts {
    for tag in header.unwrap_or_default().split(',') {
        let tag = tag.split(';').next().unwrap_or_default().trim();
        let primary = tag.split('-').next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("lt") {
            return &LT;
        }
        if primary.eq_ignore_ascii_case("en") {
            return &EN;
        }
    }
    &EN
}
