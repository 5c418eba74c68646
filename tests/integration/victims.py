"""A backdoor's two victims: one classifier trained on the clean rows and one on the rows with the poisons in
place, scored on the triggered test images (integration/test_sleeper_agent.py, test_targeted_efficacy.py)."""

from __future__ import annotations


def trigger_outcomes(train, poison, test, victim, target_class: int) -> tuple[dict, dict[str, float]]:
    """Train the classifier `victim` (a ClassifierConfig, seed 1) on the ImageSet `train` as it is ("clean") and
    with the PoisonSet `poison`'s rows in place ("poisoned").

    Returns ({name: SuccessRate of the test images not of `target_class`, `poison`'s trigger applied, classified
    as `target_class`}, {name: natural accuracy on `test`, 0..1}).
    """
    from genlab.attacks.targeted.targeted_eval import success_rate
    from genlab.train.classifier import predict, train_classifier

    triggered = poison.trigger.apply(test.images[test.labels != target_class])
    rates, accuracies = {}, {}
    for name, data in {"clean": train,
                       "poisoned": train.replace_rows(poison.base_indices, poison.images, poison.labels)}.items():
        model = train_classifier(data.images, data.labels, 10, victim, seed=1)
        rates[name] = success_rate(predict(model, triggered) == target_class)
        accuracies[name] = float((predict(model, test.images) == test.labels).mean())
    return rates, accuracies
