//! [`CompanyStore`] in SQL.

use crate::conn::{with_retries, Backend, Conn, Transaction};
use crate::{args, insert_audit, millis, rows, SqlStore};
use async_trait::async_trait;
use genai_core::CompanyId;
use genai_store::{AuditEvent, Company, CompanyStore, StoreError, StoreResult};

const ANY: &str = "SELECT COUNT(*) AS n FROM (SELECT 1 FROM companies LIMIT 1) AS any_company";
const INSERT: &str = "INSERT INTO companies (id, name, price_list, accounts, enterprise_subscriptions, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const UPDATE: &str =
    "UPDATE companies SET name = $2, price_list = $3, accounts = $4, enterprise_subscriptions = $5 WHERE id = $1";
const ONE: &str = "SELECT * FROM companies WHERE id = $1";
const ALL: &str = "SELECT * FROM companies ORDER BY id";

#[async_trait]
impl<B: Backend> CompanyStore for SqlStore<B> {
    async fn has_companies(&self) -> StoreResult<bool> {
        Ok(self.read_one(ANY, args![], rows::count).await?.unwrap_or(0) > 0)
    }

    async fn create_company(&self, c: &Company, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("create_company", || async {
            let mut tx = self.backend.begin().await?;
            let args = args![
                c.id.as_str(),
                &c.name,
                &c.price_list,
                c.accounts,
                c.enterprise_subscriptions,
                millis(c.created_at)
            ];
            tx.execute(INSERT, args).await?;
            insert_audit(&mut tx, audit).await?;
            tx.commit().await
        })
        .await
    }

    async fn update_company(&self, c: &Company, audit: &AuditEvent) -> StoreResult<()> {
        with_retries("update_company", || async {
            let mut tx = self.backend.begin().await?;
            let args = args![c.id.as_str(), &c.name, &c.price_list, c.accounts, c.enterprise_subscriptions];
            if tx.execute(UPDATE, args).await? == 0 {
                return Err(StoreError::NotFound.into());
            }
            insert_audit(&mut tx, audit).await?;
            tx.commit().await
        })
        .await
    }

    async fn company(&self, id: &CompanyId) -> StoreResult<Option<Company>> {
        self.read_one(ONE, args![id.as_str()], rows::company).await
    }

    async fn companies(&self) -> StoreResult<Vec<Company>> {
        self.read_all(ALL, args![], rows::company).await
    }
}
