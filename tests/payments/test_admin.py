import pytest

from payments.models import Refund, StripeEvent
from prepaid.models import Wallet
from tests.payments import events

pytestmark = pytest.mark.django_db

VISA = "4242424242424242"


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")
    client.force_login(admin)
    return client


def test_an_operator_refunds_a_drivers_unused_credit(
    admin_client, driver, package, pay_page, browser, django_capture_on_commit_callbacks
):
    from payments import services

    purchase, setup_secret = pay_page(driver, package)
    services.purchase_pay_with_card(
        purchase_id=purchase.pk, payment_method_id=browser.confirm_card_setup(setup_secret, VISA)
    )
    wallet = Wallet.objects.get(user=driver)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/prepaid/wallet/", {"action": "refund_unused_credit", "_selected_action": [wallet.pk]}
        )

    assert response.status_code == 302
    refund = Refund.objects.get()
    assert (refund.energy_wh, refund.amount_minor, refund.status) == (10_000, 450, Refund.Status.SUCCEEDED)
    assert refund.requested_by.username == "root"


def test_the_admin_pages_render_read_only(admin_client, driver, package, pay_page):
    pay_page(driver, package)
    StripeEvent.objects.create(event_id="evt_a", type="customer.created", payload=events.event("customer.created", {}))
    for url in (
        "/admin/payments/purchase/",
        "/admin/payments/stripeevent/",
        "/admin/prepaid/wallet/",
        "/admin/prepaid/ledgerentry/",
        "/admin/payments/refund/",
        "/admin/payments/dispute/",
    ):
        assert admin_client.get(url).status_code == 200, url
    assert admin_client.get("/admin/prepaid/ledgerentry/add/").status_code == 403
