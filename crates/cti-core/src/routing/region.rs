//! Region of a phone number from its area code, for the "regional office" rules.
//!
//! What it is: a table of Russian geographic area codes (the country's first digit after +7
//! is 3, 4 or 8 for landlines; 9 is mobile and says nothing about where the caller is).
//! What it is not: complete for every country; other numbers return `None` and the rule
//! falls back to the region the CRM holds for the customer.

/// Region names are English so rules written in TOML stay ASCII; the CRM's region field is
/// compared case-insensitively against the same names.
const RUSSIA: &[(&str, &str)] = &[
    ("495", "Moscow"),
    ("499", "Moscow"),
    ("498", "Moscow Oblast"),
    ("496", "Moscow Oblast"),
    ("812", "Saint Petersburg"),
    ("813", "Leningrad Oblast"),
    ("383", "Novosibirsk"),
    ("343", "Ekaterinburg"),
    ("843", "Kazan"),
    ("831", "Nizhny Novgorod"),
    ("846", "Samara"),
    ("861", "Krasnodar"),
    ("863", "Rostov-on-Don"),
    ("351", "Chelyabinsk"),
    ("342", "Perm"),
    ("347", "Ufa"),
    ("381", "Omsk"),
    ("391", "Krasnoyarsk"),
    ("473", "Voronezh"),
    ("844", "Volgograd"),
    ("423", "Vladivostok"),
    ("421", "Khabarovsk"),
    ("395", "Irkutsk"),
    ("345", "Tyumen"),
    ("862", "Sochi"),
    ("401", "Kaliningrad"),
];

/// The region of an E.164 number (`+74951112233` → `Moscow`), if its area code is known.
pub fn region_of_number(e164: &str) -> Option<&'static str> {
    let national = e164.strip_prefix("+7")?;
    if national.len() != 10 {
        return None;
    }
    RUSSIA
        .iter()
        .find(|(code, _)| national.starts_with(code))
        .map(|&(_, region)| region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_from_area_codes() {
        let cases = [
            ("+74951112233", Some("Moscow")),
            ("+74991112233", Some("Moscow")),
            ("+78121112233", Some("Saint Petersburg")),
            ("+73831112233", Some("Novosibirsk")),
            ("+73431112233", Some("Ekaterinburg")),
            ("+78431112233", Some("Kazan")),
            ("+79161234567", None),
            ("+7495111223", None),
            ("+15551230011", None),
        ];
        for (number, want) in cases {
            assert_eq!(region_of_number(number), want, "{number}");
        }
    }
}
