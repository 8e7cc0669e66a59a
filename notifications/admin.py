"""The outbox in the admin: what was sent to whom, what failed and why; failed emails can be sent
again once the mail server is back."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy, ngettext

from notifications import services
from notifications.models import Notification
from prepaid.admin import ReadOnlyAdmin


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "user", "to_email", "status", "attempts", "subject", "sent_at")
    list_filter = ("status", "kind", "created_at")
    search_fields = ("key", "user__username", "user__email", "to_email", "subject")
    readonly_fields = [field.name for field in Notification._meta.fields]
    actions = ["send_again"]

    @admin.action(description=gettext_lazy("Send the selected failed or pending emails again now"))
    def send_again(self, request, queryset):
        keys = list(
            queryset.filter(status__in=[Notification.Status.FAILED, Notification.Status.PENDING]).values_list(
                "key", flat=True
            )
        )
        count = services.notifications_resend(keys=keys)
        self.message_user(
            request,
            ngettext("%(count)s email queued to be sent again.", "%(count)s emails queued to be sent again.", count)
            % {"count": count},
            messages.SUCCESS,
        )
