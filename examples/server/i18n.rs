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
    /// The landing page when this browser's session on the link is still open.
    pub(crate) continue_title: &'static str,
    pub(crate) continue_body: &'static str,
    pub(crate) continue_button: &'static str,
    /// The 400 page of a start without the landing page's form token (or with a stale one).
    pub(crate) form_title: &'static str,
    pub(crate) form_body: &'static str,
    pub(crate) back_to_start: &'static str,
    /// "Continue on your phone": the flow page's button and the page with the QR code.
    pub(crate) phone_button: &'static str,
    pub(crate) phone_title: &'static str,
    pub(crate) phone_body: &'static str,
    pub(crate) phone_qr: &'static str,
    pub(crate) phone_once: &'static str,
    pub(crate) phone_back: &'static str,
    /// Shown live on the desktop once the phone has taken over.
    pub(crate) handed_off: &'static str,
    /// The phone's confirmation page of a hand-off URL, and its refusals.
    pub(crate) handoff_title: &'static str,
    pub(crate) handoff_body: &'static str,
    pub(crate) handoff_button: &'static str,
    pub(crate) handoff_used_title: &'static str,
    pub(crate) handoff_expired_title: &'static str,
    pub(crate) handoff_refused_body: &'static str,
    /// The link to the account's support page, when it has one.
    pub(crate) get_help: &'static str,
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
    continue_title: "Continue your verification",
    continue_body: "You have already started on this device. Continue where you left off.",
    continue_button: "Continue verification",
    form_title: "Please start from the verification page",
    form_body: "This page was open too long or did not come from the link. Nothing was started.",
    back_to_start: "Back to the verification page",
    phone_button: "Continue on your phone",
    phone_title: "Continue on your phone",
    phone_body: "Scan the code with your phone's camera, or type this address on your phone:",
    phone_qr: "QR code of the address below",
    phone_once: "The code works once, for 10 minutes. This page shows the result when you finish on your phone.",
    phone_back: "Continue on this device instead",
    handed_off: "Continued on your phone. This page shows the result when you finish there.",
    handoff_title: "Continue your verification here",
    handoff_body: "This verification was started on another device. Continue it on this one; the other device then waits for you.",
    handoff_button: "Continue here",
    handoff_used_title: "This code has already been used",
    handoff_expired_title: "This code has expired",
    handoff_refused_body: "On the other device, choose \"Continue on your phone\" again for a new code.",
    get_help: "Get help",
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
    continue_title: "Tęskite patvirtinimą",
    continue_body: "Šiame įrenginyje jau pradėjote. Tęskite ten, kur baigėte.",
    continue_button: "Tęsti patvirtinimą",
    form_title: "Pradėkite nuo patvirtinimo puslapio",
    form_body: "Šis puslapis buvo atidarytas per ilgai arba atidarytas ne iš nuorodos. Niekas nepradėta.",
    back_to_start: "Grįžti į patvirtinimo puslapį",
    phone_button: "Tęsti telefone",
    phone_title: "Tęsti telefone",
    phone_body: "Nuskaitykite kodą telefono kamera arba įveskite šį adresą telefone:",
    phone_qr: "Toliau pateikto adreso QR kodas",
    phone_once: "Kodas veikia vieną kartą, 10 minučių. Baigus telefone, šiame puslapyje matysite rezultatą.",
    phone_back: "Verčiau tęsti šiame įrenginyje",
    handed_off: "Tęsiama telefone. Baigus ten, šiame puslapyje matysite rezultatą.",
    handoff_title: "Tęskite patvirtinimą čia",
    handoff_body: "Šis patvirtinimas pradėtas kitame įrenginyje. Tęskite jį šiame; kitas įrenginys palauks.",
    handoff_button: "Tęsti čia",
    handoff_used_title: "Šis kodas jau panaudotas",
    handoff_expired_title: "Šio kodo galiojimas baigėsi",
    handoff_refused_body: "Kitame įrenginyje dar kartą pasirinkite „Tęsti telefone“ ir gausite naują kodą.",
    get_help: "Pagalba",
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
