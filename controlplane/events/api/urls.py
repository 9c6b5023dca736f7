from django.urls import path

from controlplane.events.api import views

urlpatterns = [
    path("events/", views.EventListApi.as_view(), name="event-list"),
    path("webhooks/", views.WebhookListCreateApi.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>/", views.WebhookDetailApi.as_view(), name="webhook-detail"),
]
