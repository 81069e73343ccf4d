//! The demo's sample data: agents and about fifty customers with Russian and international
//! numbers, so every screen has something real-looking to show. Plain data, no I/O.
//!
//! The simulated Asterisk rings extensions 101–104 (the fixtures' agents), so the demo agents
//! own exactly those extensions.

/// A demo account. Passwords are generated at start and printed, never stored here.
pub struct SeedUser {
    pub login: &'static str,
    pub display_name: &'static str,
    pub role: &'static str,
    pub extensions: &'static [&'static str],
    pub queues: &'static [&'static str],
}

pub const USERS: &[SeedUser] = &[
    SeedUser {
        login: "anna",
        display_name: "Анна Петрова",
        role: "agent",
        extensions: &["101"],
        queues: &["sales"],
    },
    SeedUser {
        login: "boris",
        display_name: "Борис Иванов",
        role: "agent",
        extensions: &["102"],
        queues: &["sales", "support"],
    },
    SeedUser {
        login: "svetlana",
        display_name: "Светлана Смирнова",
        role: "agent",
        extensions: &["103"],
        queues: &["sales", "support", "billing"],
    },
    SeedUser {
        login: "dmitry",
        display_name: "Дмитрий Козлов",
        role: "agent",
        extensions: &["104"],
        queues: &["hotline"],
    },
    SeedUser {
        login: "olga",
        display_name: "Ольга Соколова",
        role: "supervisor",
        extensions: &[],
        queues: &[],
    },
    SeedUser {
        login: "admin",
        display_name: "Administrator",
        role: "admin",
        extensions: &[],
        queues: &[],
    },
];

/// A demo customer of the built-in directory.
pub struct SeedCustomer {
    pub name: String,
    pub company: Option<String>,
    /// As a person would type them; storage keeps the E.164 form next to this.
    pub phones: Vec<(String, String)>,
    pub responsible_login: Option<&'static str>,
    pub segment: Option<&'static str>,
    pub tags: Vec<&'static str>,
    pub blacklisted: bool,
    pub debtor: bool,
    pub region: Option<&'static str>,
    pub notes: Option<String>,
    pub instructions: Option<String>,
}

/// The customers the fixtures and the simulator call from come first (`+1555123000N`), so a
/// simulated call pops a known card; the rest fill the directory.
pub fn customers() -> Vec<SeedCustomer> {
    let mut out = Vec::new();
    let fixture_callers = [
        ("Alice Anderson", "Anderson Logistics LLC"),
        ("Bob Brown", "Brown & Sons"),
        ("Carol Clark", "Clark Dental"),
        ("Dave Davis", "Davis Motors"),
        ("Erin Evans", "Evans Travel"),
        ("Frank Fisher", "Fisher Foods"),
        ("Grace Green", "Green Energy Inc."),
        ("Henry Hill", "Hill Construction"),
        ("Irene Irving", "Irving Law Office"),
        ("Jack Jones", "Jones Printing"),
    ];
    for (index, (name, company)) in fixture_callers.iter().enumerate() {
        let number = format!("+1555123{:04}", index + 1);
        out.push(SeedCustomer {
            name: (*name).to_owned(),
            company: Some((*company).to_owned()),
            phones: vec![(number.clone(), number)],
            responsible_login: Some(["anna", "boris", "svetlana"][index % 3]),
            segment: Some(if index == 0 { "vip" } else { "regular" }),
            tags: if index == 0 {
                vec!["vip", "key-account"]
            } else {
                vec![]
            },
            blacklisted: false,
            debtor: index == 5,
            region: Some("US"),
            notes: None,
            instructions: (index == 0)
                .then(|| "VIP: greet by name, offer the priority line.".to_owned()),
        });
    }

    // Hand-picked Russian customers covering every flag the panel and the router care about.
    out.push(SeedCustomer {
        name: "Иван Кузнецов".to_owned(),
        company: Some("ООО «Ромашка»".to_owned()),
        phones: vec![
            ("8 (916) 123-45-67".to_owned(), "+79161234567".to_owned()),
            ("+7 495 123-45-67".to_owned(), "+74951234567".to_owned()),
        ],
        responsible_login: Some("anna"),
        segment: Some("vip"),
        tags: vec!["vip", "wholesale"],
        blacklisted: false,
        debtor: false,
        region: Some("Москва"),
        notes: Some("Оптовый клиент с 2019 года.".to_owned()),
        instructions: Some("VIP: соединять с персональным менеджером без очереди.".to_owned()),
    });
    out.push(SeedCustomer {
        name: "Пётр Должников".to_owned(),
        company: Some("ИП Должников П. С.".to_owned()),
        phones: vec![("+7 (812) 555-01-02".to_owned(), "+78125550102".to_owned())],
        responsible_login: Some("boris"),
        segment: Some("regular"),
        tags: vec!["collections"],
        blacklisted: false,
        debtor: true,
        region: Some("Санкт-Петербург"),
        notes: Some("Задолженность 48 000 ₽ по счёту от 01.10.".to_owned()),
        instructions: Some("Должник: напомнить об оплате, перевести в отдел взыскания.".to_owned()),
    });
    out.push(SeedCustomer {
        name: "Спам-звонки".to_owned(),
        company: None,
        phones: vec![("+7 (900) 000-00-00".to_owned(), "+79000000000".to_owned())],
        responsible_login: None,
        segment: None,
        tags: vec!["spam"],
        blacklisted: true,
        debtor: false,
        region: None,
        notes: Some("Робот-обзвон, в чёрном списке.".to_owned()),
        instructions: None,
    });
    // One number shared by two customers (a reception desk): the panel must offer a choice.
    for name in ["Мария Орлова", "Алексей Орлов"] {
        out.push(SeedCustomer {
            name: name.to_owned(),
            company: Some("Клиника «Орлов и партнёры»".to_owned()),
            phones: vec![("+7 (343) 222-33-44".to_owned(), "+73432223344".to_owned())],
            responsible_login: Some("svetlana"),
            segment: Some("regular"),
            tags: vec![],
            blacklisted: false,
            debtor: false,
            region: Some("Екатеринбург"),
            notes: None,
            instructions: None,
        });
    }

    // Generated filler: Russian mobile and city numbers plus a few international ones.
    let first = [
        "Алексей",
        "Елена",
        "Сергей",
        "Наталья",
        "Андрей",
        "Татьяна",
        "Михаил",
        "Ирина",
    ];
    let last = [
        "Волков",
        "Морозова",
        "Лебедев",
        "Новикова",
        "Егоров",
        "Павлова",
        "Фёдоров",
        "Зайцева",
    ];
    let companies = [
        "ООО «Вектор»",
        "АО «Сибирь-Транс»",
        "ООО «Альфа-Строй»",
        "ИП Семёнов",
        "ООО «ТехноМир»",
    ];
    let regions = [
        ("Москва", "495"),
        ("Санкт-Петербург", "812"),
        ("Новосибирск", "383"),
        ("Казань", "843"),
    ];
    for index in 0..30 {
        let (region, area) = regions[index % regions.len()];
        let (shown, e164) = if index % 3 == 0 {
            let digits = format!("{area}{:07}", 1_000_000 + index * 7919);
            (
                format!("8 ({area}) {}", &digits[3..]),
                format!("+7{digits}"),
            )
        } else {
            let digits = format!(
                "9{:02}{:07}",
                10 + index,
                2_000_000 + index * 104_729 % 7_000_000
            );
            (
                format!(
                    "+7 {} {}-{}-{}",
                    &digits[..3],
                    &digits[3..6],
                    &digits[6..8],
                    &digits[8..]
                ),
                format!("+7{digits}"),
            )
        };
        out.push(SeedCustomer {
            name: format!(
                "{} {}",
                first[index % first.len()],
                last[(index / 2) % last.len()]
            ),
            company: (index % 2 == 0).then(|| companies[index % companies.len()].to_owned()),
            phones: vec![(shown, e164)],
            responsible_login: Some(["anna", "boris", "svetlana", "dmitry"][index % 4]),
            segment: Some(if index % 10 == 0 { "vip" } else { "regular" }),
            tags: vec![],
            blacklisted: false,
            debtor: index == 17,
            region: Some(region),
            notes: None,
            instructions: None,
        });
    }
    let international = [
        (
            "Hans Müller",
            "Müller GmbH",
            "+49 30 1234567",
            "+49301234567",
            "DE",
        ),
        (
            "Marie Dubois",
            "Dubois SARL",
            "+33 1 42 68 53 00",
            "+33142685300",
            "FR",
        ),
        (
            "Айгуль Нурланова",
            "ТОО «Астана Логистик»",
            "+7 717 255 0011",
            "+77172550011",
            "KZ",
        ),
        (
            "Oliver Smith",
            "Smith & Co Ltd",
            "+44 20 7946 0958",
            "+442079460958",
            "GB",
        ),
    ];
    for (name, company, shown, e164, region) in international {
        out.push(SeedCustomer {
            name: name.to_owned(),
            company: Some(company.to_owned()),
            phones: vec![(shown.to_owned(), e164.to_owned())],
            responsible_login: Some("boris"),
            segment: Some("regular"),
            tags: vec!["international"],
            blacklisted: false,
            debtor: false,
            region: Some(region),
            notes: None,
            instructions: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_fifty_customers_with_every_flag() {
        let customers = customers();
        assert!((45..=60).contains(&customers.len()), "{}", customers.len());
        assert!(customers.iter().any(|c| c.blacklisted));
        assert!(customers.iter().any(|c| c.debtor));
        assert!(customers.iter().any(|c| c.segment == Some("vip")));
        for customer in &customers {
            for (_, e164) in &customer.phones {
                assert!(
                    e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()),
                    "{e164}"
                );
                assert!((11..=16).contains(&e164.len()), "{e164}");
            }
        }
        let mut numbers: Vec<_> = customers
            .iter()
            .flat_map(|c| c.phones.iter().map(|p| p.1.clone()))
            .collect();
        let total = numbers.len();
        numbers.sort();
        numbers.dedup();
        assert_eq!(total - numbers.len(), 1, "exactly one shared number");
    }

    #[test]
    fn responsible_managers_exist() {
        for customer in customers() {
            if let Some(login) = customer.responsible_login {
                assert!(USERS.iter().any(|u| u.login == login), "{login}");
            }
        }
    }
}
