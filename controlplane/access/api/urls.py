from django.urls import path

from controlplane.access.api import views

urlpatterns = [
    path("keys/", views.APIKeyListCreateApi.as_view(), name="apikey-list"),
    path("keys/<str:prefix>/revoke/", views.APIKeyRevokeApi.as_view(), name="apikey-revoke"),
]
