//! The built-in customer directory: customers and their phone numbers.
//!
//! A phone number may belong to several customers (a shared office line), so lookups by number
//! return every match for the operator to choose. Numbers are stored in E.164 as normalized by
//! the caller; this module does no phone parsing. Search is case-insensitive for any script
//! because the lower-cased `search_text` column is maintained here, in Rust, not by SQL `LOWER`.

use chrono::{DateTime, Utc};

use crate::row::{bind_args, like_escape, Arg, RowExt};
use crate::types::to_micros;
use crate::users::require_affected;
use crate::{in_tx, on_pool, CustomerId, Storage, StorageError, UserId};

/// Identity of a customer in an external CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef {
    /// Connector name, e.g. `bitrix24`.
    pub crm: String,
    /// The CRM's id of the contact or company.
    pub id: String,
}

/// One phone number of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerPhone {
    /// Normalized number, e.g. `+79161234567`.
    pub phone_e164: String,
    /// The number as entered or as the CRM holds it, for display.
    pub phone_raw: Option<String>,
    /// Free label: `mobile`, `work`, `fax`, ...
    pub kind: Option<String>,
}

/// A customer to insert or update, with the complete list of its phones.
#[derive(Debug, Clone, Default)]
pub struct CustomerUpsert {
    /// Update this customer; `None` means "find by `external`, else insert".
    pub id: Option<CustomerId>,
    /// CRM identity; upserts with the same reference update the same row.
    pub external: Option<ExternalRef>,
    /// Display name (person or organisation).
    pub name: String,
    /// Company name.
    pub company: Option<String>,
    /// The manager responsible for this customer.
    pub responsible_user_id: Option<UserId>,
    /// Segment, e.g. `vip`.
    pub segment: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// Calls from this customer are rejected or routed specially.
    pub blacklisted: bool,
    /// The customer owes money.
    pub debtor: bool,
    /// Region, e.g. `Moscow`.
    pub region: Option<String>,
    /// Notes shown on the card.
    pub notes: Option<String>,
    /// Instructions for the operator shown in the screen pop.
    pub instructions: Option<String>,
    /// Every phone of the customer; replaces the stored list.
    pub phones: Vec<CustomerPhone>,
}

/// A stored customer with its phones.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    /// Row id.
    pub id: CustomerId,
    /// CRM identity, if the customer came from a CRM.
    pub external: Option<ExternalRef>,
    /// Display name.
    pub name: String,
    /// Company name.
    pub company: Option<String>,
    /// Responsible manager.
    pub responsible_user_id: Option<UserId>,
    /// Segment.
    pub segment: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Blacklist flag.
    pub blacklisted: bool,
    /// Debt flag.
    pub debtor: bool,
    /// Region.
    pub region: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Operator instructions.
    pub instructions: Option<String>,
    /// Phones, ordered by number.
    pub phones: Vec<CustomerPhone>,
    /// When the customer was first stored.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const CUSTOMER_COLUMNS: &str =
    "c.id, c.name, c.company, c.responsible_user_id, c.segment, c.tags, \
     c.blacklisted, c.debtor, c.region, c.notes, c.instructions, c.external_crm, c.external_id, \
     c.created_at, c.updated_at";

fn customer_from_row(row: &impl RowExt) -> Result<CustomerRow, StorageError> {
    let tags_json = row.json("tags")?;
    let tags = match tags_json {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => return Err(StorageError::corrupt("customers.tags is not a JSON array")),
    };
    let external = match (row.opt_text("external_crm")?, row.opt_text("external_id")?) {
        (Some(crm), Some(id)) => Some(ExternalRef { crm, id }),
        _ => None,
    };
    Ok(CustomerRow {
        id: CustomerId(row.int("id")?),
        external,
        name: row.text("name")?,
        company: row.opt_text("company")?,
        responsible_user_id: row.opt_int("responsible_user_id")?.map(UserId),
        segment: row.opt_text("segment")?,
        tags,
        blacklisted: row.flag("blacklisted")?,
        debtor: row.flag("debtor")?,
        region: row.opt_text("region")?,
        notes: row.opt_text("notes")?,
        instructions: row.opt_text("instructions")?,
        phones: Vec::new(),
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// The lower-cased text searched by [`Storage::search_customers`].
fn search_text(customer: &CustomerUpsert) -> String {
    let mut parts: Vec<String> = vec![customer.name.to_lowercase()];
    for part in [&customer.company, &customer.region, &customer.segment]
        .into_iter()
        .flatten()
    {
        parts.push(part.to_lowercase());
    }
    parts.extend(customer.tags.iter().map(|t| t.to_lowercase()));
    for phone in &customer.phones {
        parts.push(digits(&phone.phone_e164));
        if let Some(raw) = &phone.phone_raw {
            parts.push(digits(raw));
        }
    }
    if let Some(external) = &customer.external {
        parts.push(external.id.to_lowercase());
    }
    parts.join("\n")
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// A query that looks like a phone number is searched by its digits only.
fn looks_like_phone(query: &str) -> bool {
    let n_digits = query.chars().filter(char::is_ascii_digit).count();
    n_digits >= 3
        && query
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | ' ' | '.'))
}

impl Storage {
    /// Inserts or updates a customer and replaces its phones, in one transaction.
    ///
    /// With `id` set the row must exist; otherwise a matching `external` reference updates that
    /// customer, and anything else inserts a new one. Repeating an upsert changes nothing but
    /// `updated_at`.
    pub async fn upsert_customer(
        &self,
        customer: &CustomerUpsert,
        now: DateTime<Utc>,
    ) -> Result<CustomerId, StorageError> {
        let now = to_micros(now);
        let tags = serde_json::Value::from(customer.tags.clone()).to_string();
        let search = search_text(customer);
        let (crm, ext_id) = match &customer.external {
            Some(external) => (Some(external.crm.as_str()), Some(external.id.as_str())),
            None => (None, None),
        };
        let mut phones: Vec<&CustomerPhone> = Vec::with_capacity(customer.phones.len());
        for phone in &customer.phones {
            if !phones.iter().any(|p| p.phone_e164 == phone.phone_e164) {
                phones.push(phone);
            }
        }
        let id = in_tx!(self, tx => {
            let existing: Option<i64> = match (customer.id, &customer.external) {
                (Some(id), _) => {
                    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_none() {
                        return Err(StorageError::not_found(format!("customer {id}")));
                    }
                    found
                }
                (None, Some(external)) => {
                    sqlx::query_scalar("SELECT id FROM customers WHERE external_crm = $1 AND external_id = $2")
                        .bind(&external.crm)
                        .bind(&external.id)
                        .fetch_optional(&mut *tx)
                        .await?
                }
                (None, None) => None,
            };
            let id: i64 = match existing {
                Some(id) => {
                    sqlx::query(
                        "UPDATE customers SET name = $1, company = $2, responsible_user_id = $3, segment = $4, \
                         tags = $5, blacklisted = $6, debtor = $7, region = $8, notes = $9, instructions = $10, \
                         external_crm = $11, external_id = $12, search_text = $13, updated_at = $14 WHERE id = $15",
                    )
                    .bind(&customer.name)
                    .bind(&customer.company)
                    .bind(customer.responsible_user_id.map(|u| u.0))
                    .bind(&customer.segment)
                    .bind(&tags)
                    .bind(customer.blacklisted)
                    .bind(customer.debtor)
                    .bind(&customer.region)
                    .bind(&customer.notes)
                    .bind(&customer.instructions)
                    .bind(crm)
                    .bind(ext_id)
                    .bind(&search)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    id
                }
                None => {
                    sqlx::query_scalar(
                        "INSERT INTO customers (name, company, responsible_user_id, segment, tags, blacklisted, \
                         debtor, region, notes, instructions, external_crm, external_id, search_text, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING id",
                    )
                    .bind(&customer.name)
                    .bind(&customer.company)
                    .bind(customer.responsible_user_id.map(|u| u.0))
                    .bind(&customer.segment)
                    .bind(&tags)
                    .bind(customer.blacklisted)
                    .bind(customer.debtor)
                    .bind(&customer.region)
                    .bind(&customer.notes)
                    .bind(&customer.instructions)
                    .bind(crm)
                    .bind(ext_id)
                    .bind(&search)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            sqlx::query("DELETE FROM customer_phones WHERE customer_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for phone in &phones {
                sqlx::query("INSERT INTO customer_phones (customer_id, phone_e164, phone_raw, kind) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(&phone.phone_e164)
                    .bind(&phone.phone_raw)
                    .bind(&phone.kind)
                    .execute(&mut *tx)
                    .await?;
            }
            id
        });
        Ok(CustomerId(id))
    }

    /// The customer with this id, with phones.
    pub async fn get_customer(&self, id: CustomerId) -> Result<Option<CustomerRow>, StorageError> {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id = $1");
        let rows = self.query_customers(&sql, vec![Arg::Int(id.0)]).await?;
        Ok(rows.into_iter().next())
    }

    /// The customer with this CRM reference, with phones.
    pub async fn find_customer_by_external(
        &self,
        external: &ExternalRef,
    ) -> Result<Option<CustomerRow>, StorageError> {
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.external_crm = $1 AND c.external_id = $2"
        );
        let rows = self
            .query_customers(
                &sql,
                vec![
                    Arg::Text(external.crm.clone()),
                    Arg::Text(external.id.clone()),
                ],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Every customer having this E.164 number, ordered by id; empty when none.
    pub async fn find_customers_by_phone(
        &self,
        phone_e164: &str,
    ) -> Result<Vec<CustomerRow>, StorageError> {
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers c \
             WHERE c.id IN (SELECT customer_id FROM customer_phones WHERE phone_e164 = $1) ORDER BY c.id"
        );
        self.query_customers(&sql, vec![Arg::Text(phone_e164.to_owned())])
            .await
    }

    /// Case-insensitive substring search over name, company, region, segment, tags, phone digits
    /// and CRM id; ordered by name. A query that looks like a phone number matches by digits.
    pub async fn search_customers(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<CustomerRow>, StorageError> {
        let needle = if looks_like_phone(query) {
            digits(query)
        } else {
            query.trim().to_lowercase()
        };
        let pattern = format!("%{}%", like_escape(&needle));
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.search_text LIKE $1 ESCAPE '\\' \
             ORDER BY c.name, c.id LIMIT $2"
        );
        self.query_customers(&sql, vec![Arg::Text(pattern), Arg::Int(i64::from(limit))])
            .await
    }

    /// Number of customers in the directory.
    pub async fn count_customers(&self) -> Result<u64, StorageError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(pool).await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Customers with id greater than `after`, ordered by id: keyset paging for cache loads.
    pub async fn list_customers_page(
        &self,
        after: Option<CustomerId>,
        limit: u32,
    ) -> Result<Vec<CustomerRow>, StorageError> {
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id > $1 ORDER BY c.id LIMIT $2"
        );
        self.query_customers(
            &sql,
            vec![
                Arg::Int(after.map_or(0, |a| a.0)),
                Arg::Int(i64::from(limit)),
            ],
        )
        .await
    }

    /// Deletes a customer and its phones; tasks keep their phone number.
    pub async fn delete_customer(&self, id: CustomerId) -> Result<(), StorageError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM customers WHERE id = $1")
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        require_affected(affected, || format!("customer {id}"))
    }

    /// Runs a customer query and attaches phones with one more query.
    async fn query_customers(
        &self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<CustomerRow>, StorageError> {
        let mut customers = on_pool!(self, pool => {
            let rows = bind_args!(sqlx::query(sql), args).fetch_all(pool).await?;
            rows.iter().map(customer_from_row).collect::<Result<Vec<_>, _>>()?
        });
        if customers.is_empty() {
            return Ok(customers);
        }
        let placeholders: Vec<String> = (1..=customers.len()).map(|i| format!("${i}")).collect();
        let phone_sql = format!(
            "SELECT customer_id, phone_e164, phone_raw, kind FROM customer_phones \
             WHERE customer_id IN ({}) ORDER BY customer_id, phone_e164",
            placeholders.join(", ")
        );
        let ids: Vec<Arg> = customers.iter().map(|c| Arg::Int(c.id.0)).collect();
        let phones = on_pool!(self, pool => {
            let rows = bind_args!(sqlx::query(&phone_sql), ids).fetch_all(pool).await?;
            let mut phones = Vec::with_capacity(rows.len());
            for row in &rows {
                phones.push((
                    row.int("customer_id")?,
                    CustomerPhone {
                        phone_e164: row.text("phone_e164")?,
                        phone_raw: row.opt_text("phone_raw")?,
                        kind: row.opt_text("kind")?,
                    },
                ));
            }
            phones
        });
        for customer in &mut customers {
            customer.phones = phones
                .iter()
                .filter(|(cid, _)| *cid == customer.id.0)
                .map(|(_, p)| p.clone())
                .collect();
        }
        Ok(customers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_like_queries_are_searched_by_digits() {
        assert!(looks_like_phone("+7 (916) 123-45-67"));
        assert!(looks_like_phone("916"));
        assert!(!looks_like_phone("91"));
        assert!(!looks_like_phone("ООО Ромашка 1"));
        assert_eq!(digits("+7 (916) 123"), "7916123");
    }

    #[test]
    fn search_text_is_lower_case_for_cyrillic() {
        let customer = CustomerUpsert {
            name: "Иван ПЕТРОВ".into(),
            company: Some("ООО Ромашка".into()),
            phones: vec![CustomerPhone {
                phone_e164: "+79161234567".into(),
                phone_raw: Some("8 (916) 123-45-67".into()),
                kind: None,
            }],
            ..CustomerUpsert::default()
        };
        let text = search_text(&customer);
        assert!(text.contains("иван петров"));
        assert!(text.contains("ооо ромашка"));
        assert!(text.contains("79161234567"));
        assert!(text.contains("89161234567"));
    }
}
