from django.urls import path

from pipelines.api import views

urlpatterns = [
    path("pipelines/", views.PipelineListCreateApi.as_view(), name="pipeline-list"),
    path("pipelines/<slug:slug>/", views.PipelineDetailApi.as_view(), name="pipeline-detail"),
    path("pipelines/<slug:slug>/run/", views.PipelineRunApi.as_view(), name="pipeline-run"),
    path("pipelines/<slug:slug>/batch/", views.PipelineBatchApi.as_view(), name="pipeline-batch"),
    path("pipelines/<slug:slug>/dry-run/", views.PipelineDryRunApi.as_view(), name="pipeline-dry-run"),
    path("pipelines/<slug:slug>/metrics/", views.PipelineMetricsApi.as_view(), name="pipeline-metrics"),
    path("pipelines/<slug:slug>/runs/", views.PipelineRunsApi.as_view(), name="pipeline-runs"),
    path("runs/<int:pk>/", views.RunDetailApi.as_view(), name="run-detail"),
]
