from django.urls import path

from usage.api.budgets import BudgetDetailView, BudgetListView
from usage.api.views import ModelListView

urlpatterns = [
    path("models", ModelListView.as_view(), name="model-list"),
    path("budgets", BudgetListView.as_view(), name="budget-list"),
    path("budgets/<int:budget_id>", BudgetDetailView.as_view(), name="budget-detail"),
]
